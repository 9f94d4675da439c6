"""Ray's exception types, with Ray's names and messages."""

from __future__ import annotations

import os


class RayError(Exception):
    """Base of every Ray error."""


class RaySystemError(RayError):
    def __init__(self, client_exc, traceback_str=None):
        self.client_exc = client_exc
        self.traceback_str = traceback_str
        super().__init__(client_exc)

    def __str__(self) -> str:
        text = f"System error: {self.client_exc}"
        return f"{text}\ntraceback: {self.traceback_str}" if self.traceback_str else text


class RayTaskError(RayError):
    """A task or actor method raised. `ray.get` raises a subclass that is also the user's exception type."""

    def __init__(self, function_name: str, traceback_str: str, cause: BaseException | None = None,
                 proctitle: str | None = None, pid: int | None = None, ip: str | None = None,
                 actor_repr: str | None = None, actor_id: str | None = None):
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.proctitle = proctitle or f"ray::{function_name}"
        self.pid = pid if pid is not None else os.getpid()
        self.ip = ip or "127.0.0.1"
        self.actor_repr = actor_repr
        self._actor_id = actor_id
        RayError.__init__(self, str(self))

    def __str__(self) -> str:
        lines = self.traceback_str.strip().splitlines()
        out = [f"{self.proctitle}() (pid={self.pid}, ip={self.ip}" + (
            f", actor_id={self._actor_id}, repr={self.actor_repr})" if self.actor_repr else ")")]
        out += lines
        return "\n".join(out)

    def as_instanceof_cause(self) -> RayTaskError:
        """A dynamic subclass of both RayTaskError and the cause's type (Ray's behaviour)."""
        cause_cls = type(self.cause) if self.cause is not None else None
        if cause_cls is None or issubclass(cause_cls, RayTaskError) or not _subclassable(cause_cls):
            return self
        name = f"RayTaskError({cause_cls.__name__})"
        try:
            cls = type(name, (RayTaskError, cause_cls), {"__init__": _dynamic_init, "__str__": RayTaskError.__str__,
                                                         "__reduce__": _dynamic_reduce})
            err = cls.__new__(cls)
            err.__dict__.update(self.__dict__)
            err.args = (str(self),)
            return err
        except TypeError:
            return self

    def __reduce__(self):
        return _rebuild_task_error, (self.function_name, self.traceback_str, self.cause, self.proctitle,
                                     self.pid, self.ip, self.actor_repr, self._actor_id)


def _rebuild_task_error(*args):
    return RayTaskError(*args)


def _dynamic_init(self, *args, **kwargs):  # never called by users; kept for pickling safety
    RayTaskError.__init__(self, *args, **kwargs)


def _dynamic_reduce(self):
    return _rebuild_as_cause, (self.function_name, self.traceback_str, self.cause, self.proctitle,
                               self.pid, self.ip, self.actor_repr, self._actor_id)


def _rebuild_as_cause(*args):
    return RayTaskError(*args).as_instanceof_cause()


def _subclassable(cls: type) -> bool:
    try:
        type("probe", (RayTaskError, cls), {})
        return True
    except TypeError:
        return False


class TaskCancelledError(RayError):
    def __init__(self, task_id=None, error_message: str | None = None):
        self.task_id = task_id
        self.error_message = error_message
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return self.error_message or (f"Task: {self.task_id} was cancelled." if self.task_id else "This task or its dependency was cancelled by")


class WorkerCrashedError(RayError):
    def __str__(self) -> str:
        return "The worker died unexpectedly while executing this task. Check python-core-worker-*.log files for more information."


class RayActorError(RayError):
    def __init__(self, cause=None, actor_id: str | None = None, error_msg: str | None = None):
        self.actor_id = actor_id
        self.error_msg = error_msg or "The actor died unexpectedly before finishing this task."
        self.cause = cause
        super().__init__(self.error_msg)

    def __str__(self) -> str:
        return self.error_msg


class ActorDiedError(RayActorError):
    pass


class ActorUnavailableError(RayActorError):
    pass


class ActorUnschedulableError(RayError):
    """The actor cannot be scheduled (e.g. the node of its hard NodeAffinitySchedulingStrategy is dead)."""

    def __init__(self, error_message: str):
        self.error_message = error_message
        super().__init__(error_message)

    def __str__(self) -> str:
        return f"The actor is not schedulable: {self.error_message}"


class LocalRayletDiedError(RayError):
    def __str__(self) -> str:
        return "The task's local raylet died. Check raylet.out for more information."


class NodeDiedError(RayError):
    pass


class TaskUnschedulableError(RayError):
    """The task cannot be scheduled (e.g. the node of its hard NodeAffinitySchedulingStrategy is dead)."""

    def __init__(self, error_message: str):
        self.error_message = error_message
        super().__init__(error_message)

    def __str__(self) -> str:
        return f"The task is not schedulable: {self.error_message}"


class ObjectStoreFullError(RayError):
    pass


class OutOfDiskError(RayError):
    pass


class OutOfMemoryError(RayError):
    pass


class ObjectLostError(RayError):
    def __init__(self, object_ref_hex: str, owner_address: str = "", call_site: str = ""):
        self.object_ref_hex = object_ref_hex
        self.owner_address = owner_address
        self.call_site = call_site
        super().__init__(object_ref_hex)

    def _base_str(self) -> str:
        return f"Failed to retrieve object {self.object_ref_hex}. "

    def __str__(self) -> str:
        return self._base_str() + (
            "All copies of the object are lost, e.g. because the node holding it died, "
            "and the object could not be reconstructed."
        )


class ObjectFetchTimedOutError(ObjectLostError):
    def __str__(self) -> str:
        return self._base_str() + "Fetch for object timed out because no locations were found for the object."


class OwnerDiedError(ObjectLostError):
    def __str__(self) -> str:
        return self._base_str() + (
            "The object's owner has exited. This is the Python worker that first created the ObjectRef via "
            "`.remote()` or `ray.put()`."
        )


class ObjectReconstructionFailedError(ObjectLostError):
    pass


class ObjectReconstructionFailedMaxAttemptsExceededError(ObjectLostError):
    pass


class ObjectReconstructionFailedLineageEvictedError(ObjectLostError):
    pass


class ReferenceCountingAssertionError(ObjectLostError):
    pass


class GetTimeoutError(RayError, TimeoutError):
    """`ray.get` timed out; also a builtin `TimeoutError`."""


class PlasmaObjectNotAvailable(RayError):
    pass


class AsyncioActorExit(RayError):
    pass


class RuntimeEnvSetupError(RayError):
    def __init__(self, error_message: str | None = None):
        self.error_message = error_message
        super().__init__(error_message)

    def __str__(self) -> str:
        return f"Failed to set up runtime environment.\n{self.error_message}" if self.error_message else (
            "Failed to set up runtime environment.")


class TaskPlacementGroupRemoved(RayError):
    """The task's placement group was removed before the task could run."""

    def __str__(self) -> str:
        return "The placement group corresponding to this task has been removed."


class ActorPlacementGroupRemoved(RayError):
    def __str__(self) -> str:
        return "The placement group corresponding to this Actor has been removed."


class PendingCallsLimitExceeded(RayError):
    pass


class CrossLanguageError(RayError):
    pass


class RayCgraphCapacityExceeded(RayError):
    pass


class AuthenticationError(RayError):
    """Token authentication failed: no token here, or the cluster refused the one sent (Ray's name).

    Only raised while token authentication is on (`RAY_AUTH_MODE` is not `disabled`).
    """

    def __init__(self, message: str):
        self.message = message
        self.__suppress_context__ = True  # the gRPC or HTTP error underneath adds nothing for the user
        super().__init__(message)

    def __str__(self) -> str:
        return self.message
