"""weight-sync: publish policy weights to 2 rollout workers ÷ an in-process ``load_state_dict``.

Model sizes: random-init Llama models on the tiny world's config (its vocabulary and token ids), from
~3M to ~100M parameters. Two worker actors (an ``ActorGroup`` like ``RolloutGroup``'s) start once;
for each size, outside the timed part, the driver builds the model and a copy, a fresh weight store
actor starts, and each worker builds the same architecture and follows that store. Timed, alternating:

- thing: ``publish_weights(store, model, v)`` (pack to numpy, send to the store actor, which
  ``ray.put``s it) and then every worker's ``sync_weights()`` until both report version ``v``: each
  runs exactly what ``RolloutWorker.sync_weights`` runs (``WeightFollower.sync``: ask the store,
  ``ray.get`` the payload zero-copy, ``apply_weights`` into its model, ``eval()``);
- baseline: ``model2.load_state_dict(model.state_dict())`` in this process.

The workers are not ``RolloutWorker``s only because those cannot swap their model, and starting two
per size cost ~25 s a size on this machine. The ratio per size is thing ÷ baseline; the headline is
the largest size's. The thing fills two models and the baseline one: the ratio is what a publish to
the rollout group costs next to one local copy. ``weight-sync-sizes.png`` plots both (median
seconds, min–max) against the parameter count.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.harness import Context, alternate, ratio_stats, ray_cluster, section, spread

SUITE = "weight-sync"
TIMEOUT_S = 300.0
WORKERS = 2
SIZES = {
    # name: (hidden_size, num_layers, intermediate_size, num_heads, num_kv_heads); head_dim 64, tied embeddings
    "3M": (256, 4, 640, 4, 2),
    "25M": (512, 8, 1408, 8, 4),
    "100M": (768, 12, 2816, 12, 4),
}
QUICK_SIZES, FULL_SIZES = ("3M", "25M"), ("3M", "25M", "100M")


def build_model(size: str, base_dir: Path, seed: int):
    """A random-init Llama of ``size`` on the tiny world's config (vocabulary, token ids)."""
    import torch
    from transformers import AutoConfig, LlamaForCausalLM

    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; fix: choose from {', '.join(SIZES)}")
    hidden, layers, inter, heads, kv = SIZES[size]
    config = AutoConfig.from_pretrained(str(base_dir))
    config.update({"hidden_size": hidden, "num_hidden_layers": layers, "intermediate_size": inter,
                   "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": hidden // heads})
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


class Follower:
    """A rollout worker's weight path without its generator: ``RolloutWorker.sync_weights`` runs
    ``WeightFollower.sync`` → ``TransformersBackend.load_payload`` (``apply_weights`` + ``eval``), as here.

    Unlike a ``RolloutWorker`` it can swap its model, so the two actors start once for every size.
    """

    def __init__(self, base_dir: str, worker_index: int = 0):
        self.base_dir, self.model, self.weights = Path(base_dir), None, None

    def load(self, size: str, seed: int, store) -> int:
        """A fresh random-init model of ``size`` following ``store``; its parameter count."""
        from actors.weights import WeightFollower

        self.model = build_model(size, self.base_dir, seed)
        self.weights = WeightFollower(store, self._apply)
        return sum(p.numel() for p in self.model.parameters())

    def _apply(self, payload) -> None:
        from ouro_ray.weights import apply_weights

        self.model = apply_weights(self.model, payload)
        self.model.eval()

    def sync_weights(self) -> int:
        return self.weights.sync()

    def threads(self) -> int:
        import torch

        return torch.get_num_threads()


class Size:
    """One model size: the driver's model and a copy, a weight store, and the followers on that size."""

    def __init__(self, size: str, base_dir: Path, followers, namespace: str, seed: int):
        self.model = build_model(size, base_dir, seed)
        self.copy = build_model(size, base_dir, seed + 1)
        self.params = sum(p.numel() for p in self.model.parameters())
        self.size, self.followers, self.namespace, self.seed = size, followers, namespace, seed
        self.store = None
        self.version, self.publish_s, self.sync_s, self.payload_mb = 0, [], [], 0.0

    def start(self) -> None:
        """A store of this size's versions (a fresh one: the last size's weights do not fit) and the followers on it."""
        from actors.weights import start_weight_store

        self.store = start_weight_store(prefix=f"ouro-bench-ws-{self.size}", namespace=self.namespace)
        counts = self.followers.call_all("load", self.size, self.seed + 2, self.store)
        if counts != [self.params] * WORKERS:
            raise RuntimeError(f"followers built {counts} parameters, the driver {self.params}")

    def publish_and_sync(self) -> float:
        from actors.weights import publish_weights

        self.version += 1
        start = time.perf_counter()
        payload = publish_weights(self.store, self.model, self.version, timeout_s=TIMEOUT_S)
        published = time.perf_counter()
        held = self.followers.call_all("sync_weights")  # what RolloutGroup.sync_weights does
        end = time.perf_counter()
        if held != [self.version] * WORKERS:
            raise RuntimeError(f"workers hold versions {held} after publishing {self.version}")
        self.payload_mb = payload.nbytes / 1e6
        self.publish_s.append(published - start)
        self.sync_s.append(end - published)
        return end - start

    def load_in_process(self) -> float:
        start = time.perf_counter()
        self.copy.load_state_dict(self.model.state_dict())
        return time.perf_counter() - start

    def close(self) -> None:
        import ray

        if self.store is not None:
            ray.kill(self.store, no_restart=True)


def measure(size: str, base_dir: Path, followers, ctx: Context) -> dict:
    """Alternating publish-to-2-workers and in-process load for one size; its ratio and absolute figures."""
    started = time.perf_counter()
    side = Size(size, base_dir, followers, ctx.namespace, ctx.seed)
    try:
        side.start()
        setup_s = time.perf_counter() - started
        remote_s, local_s = alternate(side.publish_and_sync, side.load_in_process, reps=ctx.reps)
    finally:
        side.close()
    keep = slice(-ctx.reps, None)  # the warm-up round is not reported
    return {"params": side.params, "payload_mb": round(side.payload_mb, 1), "setup_s": round(setup_s, 2),
            "ratio": ratio_stats(remote_s, local_s),
            "publish_to_workers_s": spread(remote_s), "in_process_load_s": spread(local_s),
            "publish_s": spread(side.publish_s[keep]), "sync_s": spread(side.sync_s[keep]),
            "publish_to_workers_gb_per_s": spread([side.payload_mb / 1e3 / s for s in remote_s])}


def plot_sizes(per_size: dict[str, dict], path: Path) -> Path:
    """Median seconds (min–max bars) of both sides against the parameter count, log–log."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    xs = [r["params"] for r in per_size.values()]
    for key, label in (("publish_to_workers_s", f"publish + sync to {WORKERS} workers"),
                       ("in_process_load_s", "in-process load_state_dict")):
        med = [r[key]["median"] for r in per_size.values()]
        err = [[m - r[key]["min"] for m, r in zip(med, per_size.values())],
               [r[key]["max"] - m for m, r in zip(med, per_size.values())]]
        ax.errorbar(xs, med, yerr=err, marker="o", capsize=4, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    for x, name in zip(xs, per_size):
        ax.annotate(name, (x, ax.get_ylim()[0]), fontsize=7, ha="center", va="bottom")
    ax.set_xlabel("parameters")
    ax.set_ylabel("seconds")
    ax.set_title("weight-sync: seconds vs model size", fontsize=9)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    return path


def run(ctx: Context) -> dict:
    import torch

    from actors.group import ActorGroup
    from ouro_ray.config import load_config
    from ouro_ray.config.roles import RoleResources
    from ouro_ray.models.resolve import resolve_model

    repo = Path(__file__).resolve().parents[1]
    cfg = load_config(str(repo / "configs/tiny.yaml"))
    base_dir = resolve_model("tiny-world", cfg.world, cfg.seed).model_dir  # tokenizer and token ids; cached after one build
    sizes = QUICK_SIZES if ctx.quick else FULL_SIZES
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise ValueError(f"unknown model size(s) {unknown}; fix: choose from {', '.join(SIZES)}")
    per_size: dict[str, dict] = {}
    workers = RoleResources(num_workers=WORKERS, num_cpus=0.5, max_restarts=0, max_task_retries=0,
                            call_timeout_s=TIMEOUT_S)
    followers, threads = None, torch.get_num_threads()
    with ray_cluster(ctx):
        try:
            followers = ActorGroup("weight-follower", Follower, workers, str(base_dir), prefix="ouro-bench",
                                   namespace=ctx.namespace)
            worker_threads = followers.call_all("threads")
            # One copy thread here as in the workers (Ray gives a 0.5-CPU actor one): with two, the in-process
            # copy swung 15 ms ↔ 350 ms on 2 busy cores (thread barriers), which measured the machine, not the copy.
            torch.set_num_threads(1)
            for size in sizes:
                per_size[size] = measure(size, base_dir, followers, ctx)
        finally:
            torch.set_num_threads(threads)
            if followers is not None:
                followers.close()
    plot_sizes(per_size, ctx.out / "weight-sync-sizes.png")
    largest = per_size[sizes[-1]]
    return section(
        SUITE, ratio_name=f"publish to {WORKERS} workers / in-process load ({sizes[-1]})", ratio=largest["ratio"],
        absolute={"per_size": per_size},
        params={"sizes": {s: dict(zip(("hidden", "layers", "intermediate", "heads", "kv_heads"), SIZES[s]))
                          for s in sizes}, "workers": WORKERS, "dtype": "float32",
                "torch_threads": {"driver": 1, "workers": worker_threads},
                "worker": "Follower: WeightFollower.sync + apply_weights, as RolloutWorker.sync_weights",
                "reps": ctx.reps},
        notes=["thing: publish_weights (pack + send to the store actor, which ray.puts it) then sync_weights on 2 "
               "worker actors (WeightFollower.sync + apply_weights, RolloutWorker's path) until both hold the version; "
               "baseline: model2.load_state_dict(model.state_dict())",
               "the thing fills 2 models, the baseline 1; headline ratio = the largest size's; "
               "per-size ratios under absolute.per_size"])
