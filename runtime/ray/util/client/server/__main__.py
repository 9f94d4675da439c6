from ray.util.client.server.server import main

main()
