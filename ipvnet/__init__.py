"""ipvnet: Docker-style ipvlan and macvlan networks for plain named network namespaces."""

__version__ = "0.1.0"
