"""The cluster launcher (`ray up/down/attach/exec/submit/rsync-up/rsync-down/get-head-ip/get-worker-ips`)
for the `local` provider: a fixed list of hosts reached with the system's `ssh` and `rsync`.

`cluster_yaml` reads and checks Ray's cluster YAML, `ssh` runs commands and copies files on one host,
`state` is the provider's record of the nodes (Ray's `/tmp/cluster-<name>.state`), `updater` brings one
node up to date step by step, and `commands` is what each CLI command does."""
