"""Former home of the Ray and process-pool collection; kept so old imports keep working.

The backends now live in :mod:`collect.backends` (``process``, ``ray_actors``) and the worker
pieces in :mod:`collect.engine`.
"""

from collect.backends.process import _POLL_S, _sendable, _worker_main, collect_with_processes  # noqa: F401
from collect.backends.ray_actors import REPO_ROOT, collect_with_ray, import_ray  # noqa: F401
from collect.engine import WARM_UP_SEED, CollectorActor, warm_up  # noqa: F401
