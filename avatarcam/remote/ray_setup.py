"""How the worker starts Ray: every process on loopback, no metrics pages, the WebSocket size limit.

Ray reads these from the environment, some when ``ray`` is imported and the rest in every process it
starts (they inherit the driver's environment), so :func:`prepare_environment` runs before ``import
ray``. No Ray import here.
"""

from __future__ import annotations

import os

# Ray's local-only mode (its default on macOS/Windows): the node's address is 127.0.0.1, so the GCS,
# raylet, core workers, dashboard agent and runtime-env agent bind loopback instead of every interface
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# Serve's metrics name every prepared avatar's id (ray_serve_registered_multiplexed_model_id) on
# Prometheus pages without authentication: collect none
METRICS_ENV = "RAY_enable_metrics_collection"
# run in Serve's proxy before its server starts: the WebSocket message limit (server.configure_proxy)
PROXY_HOOK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
PROXY_HOOK = "avatarcam.remote.server.configure_proxy"


def prepare_environment() -> None:
    """Set Ray's knobs for a Ray instance of our own. Call before ``import ray``."""
    os.environ[LOCAL_ONLY_ENV] = "0"
    os.environ[METRICS_ENV] = "0"
    os.environ[PROXY_HOOK_ENV] = PROXY_HOOK


def init_options() -> dict:
    """``ray.init`` keywords for a Ray instance of our own: no dashboard, no log relay to the driver."""
    return {"include_dashboard": False, "log_to_driver": False}
