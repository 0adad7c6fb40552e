"""`ouro submit`: a real run as a Ray Job on a cluster this test starts, a head and a second node, each its own
`ray start` on this machine (``cluster/nodes.py``: its own temp dir and free ports, token authentication on, the
head's dashboard and Job API), with every role placed by custom resources (``benchmarks.faults.node_overrides``:
the rollout on the head, the other roles on the second node, able to restart on the head). The submitted run
loses the second node as round 1 starts (``kill -9`` of its raylet and every worker on it), and the job still
succeeds: the roles that were on the lost node ran again elsewhere, every prompt and candidate id is in every
round's shards exactly once, and the metrics equal the clean run's (``clean_drill``: the same seeded sync run on
the session's one-node cluster; where a role runs changes no figure). Then the job's status, logs and stop, and
the token refused; the checks that need no cluster (the config validated first, the runtime env) below.

The nodes are not the session's cluster, and the client is a child process: the submission goes through no Ray
connection of this test's (the clean run is the session cluster's)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from _paths import REPO

from cluster.nodes import free_port

CLIENT_TIMEOUT_S = 600  # ~70 s on an idle 2-core machine; room for a loaded one
# A one-round run of configs/tiny.yaml on the small test world, sized for a 2-CPU head: rule judges only (no
# judge model to load), one PPO epoch, a handful of prompts. tiny.yaml's cluster.num_cpus is left in: submit
# drops it (the job joins the head's cluster).
SMALL_RUN = [
    "cluster.namespace=ouro-submit-test", "rounds=1", "data.synthetic_dialogs=4",
    "loop.prompts_per_round=8", "distill.use_ai=false", "judges.llm.enabled=false",
    "judges.constitution.enabled=false", "learner.ppo.ptx_coef=0", "learner.ppo.epochs=1",
    "rollout.sampling.n=2", "rollout.sampling.max_new_tokens=8", "rollout.workers.num_cpus=0.5",
    "reference.workers.num_cpus=0.25", "reward_model.workers.num_cpus=0.25", "judges.num_cpus=0.25",
    "learner.num_cpus_per_worker=0.5", "evaluation.held_out_dialogs=4", "evaluation.size=4", "evaluation.n=2",
]


def ouro(*argv: str, env: dict[str, str], timeout: float = CLIENT_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ouro_ray.cli", *argv], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def client_env(home: Path, token: str | None = None) -> dict[str, str]:
    """The client's environment: a HOME of its own (so ~/.ray/auth_token is the test's) and maybe $RAY_AUTH_TOKEN."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")}
    env["HOME"] = str(home)
    if token is not None:
        env["RAY_AUTH_TOKEN"] = token
    return env


@pytest.fixture(scope="module")
def nodes():
    """A head with the dashboard and a second node (``benchmarks.faults.start_nodes``), token auth on; yields
    (dashboard URL, token, a HOME holding the token, the :class:`~cluster.nodes.LocalNodes`)."""
    from benchmarks.faults import start_nodes

    token = secrets.token_hex(16)
    # a short temp dir: Ray's socket paths under it must stay within the OS limit
    with tempfile.TemporaryDirectory(prefix="ouro-sub-") as tmp:
        home = Path(tmp) / "home"
        (home / ".ray").mkdir(parents=True)
        (home / ".ray" / "auth_token").write_text(token + "\n")
        env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        dashboard = free_port()
        with start_nodes(env, Path(tmp) / "ray", dashboard_port=dashboard) as cluster:
            yield f"http://127.0.0.1:{dashboard}", token, home, cluster


@pytest.fixture(scope="module")
def head(nodes):
    """(dashboard URL, token, a HOME holding the token) of the cluster the jobs are submitted to."""
    return nodes[:3]


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir) -> str:
    """The session's small world (the job judges with rules: the world's judge model goes unused)."""
    return tiny_model_dir


def submit(address: str, home: Path, model_dir: str, out: Path, *extra: str) -> tuple[str, subprocess.CompletedProcess]:
    """`ouro submit` of the small run; (the job id, the finished client process)."""
    done = ouro("submit", "configs/tiny.yaml", *SMALL_RUN, f"model.path={model_dir}",
                f"cluster.serve_port={free_port()}", *extra, "--out", str(out), "--address", address,
                env=client_env(home))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    job = done.stdout.splitlines()[0]  # the job id comes first (with --follow, the run's output after it)
    assert job.startswith("ouro-") and f"ouro submit --logs {job} --follow --address {address}" in done.stderr
    assert "run directory (on the cluster" in done.stderr and str(out) in done.stderr
    return job, done


@pytest.mark.ray
@pytest.mark.timeout(900)
def test_a_submitted_run_loses_a_node_and_succeeds_whole_and_its_logs_status_and_run_directory_show_it(
        clean_drill, model_dir, nodes, tmp_path):
    from benchmarks.faults import DRILL, check, drill_node, node_overrides

    address, token, home, cluster = nodes
    out = tmp_path / "run"
    joined = [o for o in node_overrides(cluster.address) if not o.startswith("cluster.address=")]  # the job's own
    overrides = [*DRILL, f"model.path={model_dir}", "cluster.namespace=ouro-submit-test",
                 f"cluster.serve_port={free_port()}", *joined]
    # the client's environment names this cluster's token ($RAY_AUTH_TOKEN): the drill starts it with this process's
    # environment under it, which may hold the session cluster's
    drilled = drill_node(None, overrides, out, cluster, victim="node2", env=client_env(home, token),
                         submit_to=address, timeout_s=CLIENT_TIMEOUT_S)
    assert cluster.pids("node2") == []  # the node was lost for real: nothing of it is left
    printed = drilled["log"]  # the client's stdout (the job id, then with --follow the run's output) and stderr
    job = next(line for line in printed.splitlines() if re.fullmatch(r"ouro-\d{8}-\d{6}-[0-9a-f]{4}", line))
    assert f"ouro submit --logs {job} --follow --address {address}" in printed
    assert "run directory (on the cluster" in printed and str(out) in printed
    assert f"{job}: SUCCEEDED" in printed and f"run directory: {out}" in printed  # the run's output, streamed

    row = check("node", clean_drill, drilled, out, rounds=2, n=2)
    print(f"\nclean (one node, in process) {clean_drill['seconds']:.1f} s, submitted and drilled (two nodes) "
          f"{drilled['seconds']:.1f} s; lost with the node: {drilled['lost_actors']}")
    assert row["completed"] and row["lost"] == 0 and row["duplicated"] == 0, row
    assert row["metrics_equal"], row["differences"]
    # What was on the second node when it died, all of it needed again after the loss (round 1 ran after it).
    # Which roles Ray's scheduler put there varies from run to run (they may use the head's share of the
    # resource too), so the test asks for roles lost, not for a fixed list.
    lost = {name.split(":")[-1] for name in drilled["lost_actors"]}
    assert lost & {"ReferenceWorker", "RewardWorker", "judge", "RayTrainWorker", "WeightStore"}, lost
    if "RayTrainWorker" in lost:
        assert row["learner_restarts"] >= 1  # Ray Train restarted the learner's worker group elsewhere

    again = ouro("submit", "--logs", job, "--follow", "--address", address, env=client_env(home))
    assert again.returncode == 0 and f"run directory: {out}" in again.stdout and f"{job}: SUCCEEDED" in again.stderr
    status = ouro("submit", "--status", job, "--address", address, env=client_env(home))
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0] == f"{job} SUCCEEDED"
    assert f"run directory (on the cluster): {out}" in status.stdout
    logs = ouro("submit", "--logs", job, "--address", address, env=client_env(home))
    assert f"run directory: {out}" in logs.stdout and "held-out prompts:" in logs.stdout
    assert (out / "config.yaml").is_file()


@pytest.mark.ray
def test_stop_ends_a_running_job(model_dir, head, tmp_path, monkeypatch):
    from cluster.jobs import JobClient

    address, token, home = head
    wanted = f"ouro-stop-{secrets.token_hex(3)}"
    job, _ = submit(address, home, model_dir, tmp_path / "run", "rounds=50", "--job-id", wanted,
                    "--env", f"OURO_CACHE={tmp_path / 'cache'}")
    assert job == wanted
    monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    assert JobClient(address).info(job).runtime_env["env_vars"] == {"OURO_CACHE": str(tmp_path / "cache")}
    deadline = time.monotonic() + 120
    while "run directory:" not in ouro("submit", "--logs", job, "--address", address, env=client_env(home)).stdout:
        assert time.monotonic() < deadline, "the job's run did not start within 120 s"
        time.sleep(1)
    stopped = ouro("submit", "--stop", job, "--address", address, env=client_env(home))
    assert stopped.returncode == 0, stopped.stderr
    assert f"{job}: STOPPED" in stopped.stderr
    status = ouro("submit", "--status", job, "--address", address, env=client_env(home))
    assert status.stdout.splitlines()[0] == f"{job} STOPPED"


@pytest.mark.ray
def test_a_wrong_or_missing_token_is_refused_with_the_fix(head, tmp_path):
    address, token, home = head
    wrong = ouro("submit", "--status", "ouro-any", "--address", address, env=client_env(home, token="not-" + token))
    assert wrong.returncode == 1
    assert f"the Ray cluster at {address} refused the token from $RAY_AUTH_TOKEN; fix: use that cluster's token" \
        in wrong.stderr
    none = ouro("submit", "--status", "ouro-any", "--address", address, env=client_env(tmp_path))  # no token file
    assert none.returncode == 1
    assert "requires a token and none was found" in none.stderr and "ray get-auth-token" in none.stderr
    unknown = ouro("submit", "--status", "ouro-no-such-job", "--address", address, env=client_env(home))
    assert unknown.returncode == 1 and "has no job 'ouro-no-such-job'" in unknown.stderr


@pytest.mark.ray
def test_a_driver_joins_the_cluster_by_its_address_with_the_token_it_finds(nodes):
    """`ouro run --address HEAD` (``cluster.local.connect``) with the head's token in ~/.ray/auth_token and
    RAY_AUTH_MODE unset: Ray 2.60 sends a token to an address it is given only in token mode, so without
    connect's help the head refuses it ("InvalidAuthToken", ConnectionError after ~20 s)."""
    _, _, home, cluster = nodes
    env = {k: v for k, v in client_env(home).items() if k != "RAY_AUTH_MODE"}
    probe = ("from cluster.local import connect; info = connect(%r, namespace='ouro-join-test'); "
             "print(info.token_auth, info.resources['CPU'])") % cluster.address
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    token_auth, cpus = done.stdout.split()
    assert token_auth == "True" and float(cpus) >= cluster.nodes["head"].num_cpus, done.stdout


# --- without a cluster -------------------------------------------------------------------------------------------


def test_a_bad_key_fails_before_anything_is_submitted(capsys):
    from ouro_ray.cli import main

    # port 9 (discard) answers nothing: reaching the cluster at all would fail differently (exit 1)
    assert main(["submit", "configs/tiny.yaml", "cluster.num_cpus=null", "learner.lr=1", "--address",
                 "http://127.0.0.1:9"]) == 2
    assert "unknown key 'learner.lr'" in capsys.readouterr().err


def test_a_config_that_sizes_or_names_a_cluster_joins_the_jobs_cluster_instead(capsys, monkeypatch):
    from cluster import jobs
    from ouro_ray.cli import main

    sent = {}

    class Client:
        address = "http://127.0.0.1:9"

        def __init__(self, address):
            pass

        def submit(self, entrypoint, env, job, metadata):
            sent.update(entrypoint=entrypoint, metadata=metadata)
            return job

    monkeypatch.setattr(jobs, "JobClient", Client)
    assert main(["submit", "configs/tiny.yaml", "cluster.address=10.0.0.1:6379", "rounds=2", "--job-id", "j1",
                 "--address", "http://127.0.0.1:9"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "j1"
    assert "joins the cluster it is submitted to: cluster.num_cpus=null cluster.address=null added" in captured.err
    assert sent["entrypoint"].endswith("run configs/tiny.yaml cluster.address=10.0.0.1:6379 rounds=2 "
                                       "cluster.num_cpus=null cluster.address=null --out '~/ouro-runs/j1'")


def test_a_config_outside_the_checkout_is_refused(tmp_path, capsys):
    from ouro_ray.cli import main

    config = tmp_path / "mine.yaml"
    config.write_text((REPO / "configs" / "tiny.yaml").read_text())
    assert main(["submit", str(config), "cluster.num_cpus=null", "--address", "http://127.0.0.1:9"]) == 2
    assert f"config {config}: it is outside the checkout {REPO}" in capsys.readouterr().err


def test_no_dashboard_at_the_address_is_a_clear_error(capsys):
    from ouro_ray.cli import main

    assert main(["submit", "configs/tiny.yaml", "cluster.num_cpus=null", "--address", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "no Ray dashboard answers at http://127.0.0.1:" in capsys.readouterr().err


def test_the_runtime_env_ships_the_checkout_without_its_large_dirs_and_pip_adds_the_project_dependencies():
    from cluster.jobs import project_root, runtime_env
    from ouro_ray.cli.submit import job_entrypoint

    root = project_root()
    assert root == REPO
    env = runtime_env(root, {"OURO_CACHE": "/shared/worlds"}, pip=False)
    assert env["working_dir"] == str(REPO) and env["env_vars"] == {"OURO_CACHE": "/shared/worlds"}
    assert {"/.git/", "/.venv/", "/runs/", "/bench/"} <= set(env["excludes"]) and "pip" not in env
    pip = runtime_env(root, {}, pip=True)["pip"]
    assert any(r.startswith("transformers") for r in pip) and any(r.startswith("torch") for r in pip)
    assert not any("extra" in r for r in pip)  # the test, gpu and bench extras stay off the cluster
    assert job_entrypoint("configs/tiny.yaml", ["judges.rules=[safety, persona]"], "~/ouro-runs/j") == (
        "python -m ouro_ray.cli run configs/tiny.yaml 'judges.rules=[safety, persona]' --out '~/ouro-runs/j'")


def test_an_existing_job_takes_only_the_address(capsys, monkeypatch):
    from ouro_ray.cli import main

    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    assert main(["submit", "--status", "j", "configs/tiny.yaml", "--address", "http://127.0.0.1:9"]) == 2
    assert "--status JOB takes only --address" in capsys.readouterr().err
    assert main(["submit", "--stop", "j", "--logs", "j", "--address", "http://127.0.0.1:9"]) == 2
    assert "--logs and --stop do not go together" in capsys.readouterr().err
    assert main(["submit", "--status", "j"]) == 2
    assert "fix: pass --address http://HEAD:8265" in capsys.readouterr().err
    assert main(["submit", "configs/tiny.yaml", "cluster.num_cpus=null", "--env", "OURO_CACHE", "--address",
                 "http://127.0.0.1:9"]) == 2
    assert "--env 'OURO_CACHE': expected KEY=VALUE" in capsys.readouterr().err


def test_the_token_is_found_where_ray_looks_for_it(tmp_path, monkeypatch):
    from cluster.jobs import JobError, find_token

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    assert find_token() is None
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("from-file\n")
    assert find_token().value == "from-file"
    named = tmp_path / "t"
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(named))
    with pytest.raises(JobError, match="RAY_AUTH_TOKEN_PATH = .*: no token in that file"):
        find_token()
    named.write_text("from-path")
    assert find_token().value == "from-path"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert (find_token().value, find_token().source) == ("from-env", "$RAY_AUTH_TOKEN")
