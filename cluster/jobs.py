"""Ray Jobs: a run submitted to a running cluster through its dashboard's Job API, and followed there.

Glue around :class:`ray.job_submission.JobSubmissionClient` (``ouro submit`` is its only caller). It adds
what the SDK leaves to the user: the cluster's token (Ray 2.60 turns token authentication on, and the SDK
sends a token only when this process's own ``RAY_AUTH_MODE`` is ``token``, so we always send the one we
find), errors that say what to fix instead of an HTTP status, and the runtime env that ships this checkout
as the job's ``working_dir``.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path
from typing import Callable, Iterator, Mapping

PROJECT = "ouro-ray"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_FILE = Path("~/.ray/auth_token")
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
EXCLUDES = [
    # large or machine-local: the environment, run and bench outputs, git history, caches
    "/.git/", "/.venv/", "/runs/", "/bench/", "/build/", "/dist/", "*.egg-info/", "__pycache__/",
    ".pytest_cache/", ".ruff_cache/", ".hypothesis/", ".import_linter_cache/", ".grimp_cache/", "*.whl",
]
"""Left out of the uploaded ``working_dir`` (Ray also honours the checkout's .gitignore)."""
GET_TOKEN = ("`ray get-auth-token` on the head node (on KubeRay: the cluster's token secret); put it in "
             "~/.ray/auth_token or RAY_AUTH_TOKEN")


class JobError(RuntimeError):
    """The cluster cannot be reached, refuses the token, or does not know the job; the message has the fix."""


@dataclass(frozen=True)
class Token:
    """The token sent to the cluster and where it came from (for the refusal message; never the value)."""

    value: str
    source: str


def find_token() -> Token | None:
    """The token as Ray looks for it: ``$RAY_AUTH_TOKEN``, the file ``$RAY_AUTH_TOKEN_PATH``, ~/.ray/auth_token."""
    value = os.environ.get(TOKEN_ENV, "").strip()
    if value:
        return Token(value, f"${TOKEN_ENV}")
    named = os.environ.get(TOKEN_PATH_ENV)
    path = Path(named or DEFAULT_TOKEN_FILE).expanduser()
    text = path.read_text().strip() if path.is_file() else ""
    if named and not text:  # as Ray does: a named token file that is missing or empty is an error, not "no token"
        raise JobError(f"{TOKEN_PATH_ENV} = {named}: no token in that file (missing or empty); fix: write the "
                       f"cluster's token there ({GET_TOKEN}), or unset {TOKEN_PATH_ENV}")
    return Token(text, str(path)) if text else None


def project_root() -> Path:
    """The checkout this module is in: its root is uploaded as the job's ``working_dir``."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file() or not (root / "ouro_ray").is_dir():
        raise JobError(f"ouro-ray is installed at {root}, which is not a checkout (no pyproject.toml beside "
                       "ouro_ray/): the job's working_dir is the project's source; fix: run ouro submit from a "
                       "clone (`pip install -e .` in it)")
    return root


def project_requirements() -> list[str]:
    """The project's own dependencies (no extras), as installed: what ``--pip`` asks the job's env for."""
    try:
        listed = requires(PROJECT) or []
    except PackageNotFoundError:
        raise JobError(f"{PROJECT} is not installed, so its dependencies are unknown; fix: `pip install -e .` "
                       "in the checkout") from None
    return [r for r in listed if not re.search(r"\bextra\s*==", r)]


def runtime_env(root: Path, env_vars: Mapping[str, str], pip: bool) -> dict:
    """The job's runtime env: the checkout as ``working_dir``, ``env_vars``, and with ``pip`` the project's
    dependencies (Ray installs the missing ones into a virtualenv that inherits the image's packages)."""
    env: dict = {"working_dir": str(root), "excludes": list(EXCLUDES)}
    if env_vars:
        env["env_vars"] = dict(env_vars)
    if pip:
        env["pip"] = project_requirements()
    return env


class JobClient:
    """The Job API of the cluster whose dashboard is at ``address`` (``http://HEAD:8265``), with the token."""

    def __init__(self, address: str):
        if not address.startswith(("http://", "https://")):
            raise JobError(f"--address {address!r}: the Job API is the dashboard's HTTP address; fix: pass "
                           "--address http://HEAD:8265 (the head node's dashboard port)")
        self.address = address.rstrip("/")
        self.token = find_token()
        from ray.job_submission import JobSubmissionClient

        headers = {"Authorization": f"Bearer {self.token.value}"} if self.token else {}
        with self._calls():
            self._client = JobSubmissionClient(self.address, headers=headers)

    @contextmanager
    def _calls(self, job: str | None = None) -> Iterator[None]:
        """SDK failures as :class:`JobError`: a refused token, no dashboard at the address, an unknown job."""
        import requests
        from ray.exceptions import AuthenticationError

        try:
            yield
        except AuthenticationError:
            if self.token is None:
                raise JobError(f"the Ray cluster at {self.address} requires a token and none was found "
                               f"(${TOKEN_ENV}, ${TOKEN_PATH_ENV}, {DEFAULT_TOKEN_FILE}); fix: {GET_TOKEN}") from None
            raise JobError(f"the Ray cluster at {self.address} refused the token from {self.token.source}; "
                           f"fix: use that cluster's token ({GET_TOKEN})") from None
        except (ConnectionError, requests.exceptions.ConnectionError):
            raise JobError(f"no Ray dashboard answers at {self.address}; fix: check the head's address and "
                           "dashboard port (default 8265; started with `ray start --head --dashboard-host "
                           "0.0.0.0` to be reachable from other machines)") from None
        except RuntimeError as exc:
            if job is not None and "404" in str(exc):
                raise JobError(f"the cluster at {self.address} has no job {job!r}; fix: use the id `ouro submit` "
                               "printed (`ray job list` lists them)") from None
            raise

    def submit(self, entrypoint: str, runtime_env: dict, submission_id: str, metadata: Mapping[str, str]) -> str:
        with self._calls():
            return self._client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env,
                                           submission_id=submission_id, metadata=dict(metadata))

    def info(self, job: str):
        """The job's :class:`~ray.job_submission.JobDetails` (status, message, times, metadata)."""
        with self._calls(job):
            return self._client.get_job_info(job)

    def logs(self, job: str) -> str:
        with self._calls(job):
            return self._client.get_job_logs(job)

    def follow(self, job: str, write: Callable[[str], None]) -> str:
        """Stream the job's logs to ``write`` until it ends; returns its final status."""
        self.info(job)  # an unknown job is refused here, with the fix, rather than as a closed socket

        async def tail() -> None:
            async for chunk in self._client.tail_job_logs(job):
                write(chunk)

        with self._calls(job):
            asyncio.run(tail())
        return self.wait(job, timeout_s=30.0)

    def stop(self, job: str) -> bool:
        """Ask the cluster to stop the job; False when it had already ended."""
        with self._calls(job):
            return self._client.stop_job(job)

    def wait(self, job: str, timeout_s: float) -> str:
        """The job's status once it is terminal, or its status when ``timeout_s`` runs out."""
        deadline = time.monotonic() + timeout_s
        status = str(self.info(job).status)
        while status not in TERMINAL and time.monotonic() < deadline:
            time.sleep(0.5)
            status = str(self.info(job).status)
        return status
