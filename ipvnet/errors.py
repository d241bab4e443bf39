"""One exception hierarchy. Each kind carries the exit status the CLI returns,
so that scripts can tell "bad argument" from "not found" from "kernel said no"."""

from __future__ import annotations


class IpvnetError(Exception):
    """A failure the user can understand and act on; printed as one line."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def wrap(self, context: str) -> IpvnetError:
        """The same kind of error, with CONTEXT in front: `attach ns1 to web: create
        ipvlan link in namespace ns1: File exists`. The exit status stays the kind's."""
        if not context or self.message.startswith(context + ":"):
            return self
        err = type(self).__new__(type(self))
        err.__dict__.update(self.__dict__)
        IpvnetError.__init__(err, f"{context}: {self.message}", self.hint)
        return err


class ErrorList(IpvnetError):
    """Several failures of one command that kept going (rm of several networks,
    a repair); printed one per line, exit status of the first."""

    def __init__(self, errors: list[IpvnetError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors
        self.exit_code = errors[0].exit_code if errors else 1


class InvalidArgument(IpvnetError):
    """A value on the command line or in a file is malformed or inconsistent."""

    exit_code = 2


class NotFound(IpvnetError):
    """A network, namespace or link named by the user does not exist."""

    exit_code = 3


class Conflict(IpvnetError):
    """The request clashes with existing state (name taken, address in use, overlap, in use)."""

    exit_code = 4


class KernelError(IpvnetError):
    """The kernel refused an operation, or lacks a feature we need."""

    exit_code = 5


class PermissionDenied(IpvnetError):
    """The caller lacks root / CAP_NET_ADMIN."""

    exit_code = 6


class LockTimeout(IpvnetError):
    """Another ipvnet process held the store lock for too long."""

    exit_code = 7


class StoreError(IpvnetError):
    """The store file cannot be read or written (corrupt, unknown schema, I/O error)."""

    exit_code = 8


class ClusterError(IpvnetError):
    """The cluster store (etcd) is unreachable or refused a request."""

    exit_code = 10


class DriftFound(IpvnetError):
    """`check` found differences between the store and the kernel."""

    exit_code = 9


EXIT_CODES = {
    0: "success",
    1: "other failure",
    2: "invalid argument or usage",
    3: "network, namespace or link not found",
    4: "conflict: name taken, address in use, overlapping subnet, network in use",
    5: "the kernel refused an operation or lacks a feature",
    6: "permission denied: run as root",
    7: "timed out waiting for the store lock",
    8: "store file unreadable, corrupt or from a newer ipvnet",
    9: "check found drift between store and kernel",
    10: "the cluster store (etcd) is unreachable or refused a request",
}
