"""GPU check: the transformers rollout, the LLM judge and one learner step on one CUDA device, with figures.

Needs torch (a CUDA build) and the project's own requirements (transformers, pyarrow, …): no Ray, no vLLM.
The learner step is DeepSpeed ZeRO-3 in bf16 on this one GPU when ``deepspeed`` imports, else a plain torch
step under bf16 autocast (the output says which). The model is the project's tiny world, built here in seconds
(``--world demo``: the demo's size, minutes), or any Hugging Face directory (``--model``). The judge step runs
the LLM judge's code on the policy's weights: its figures are the judge's cost, not its quality.

    python tools/gpu_check.py                      # on a CUDA machine
    python tools/gpu_check.py --device cpu         # the same steps on the CPU (the test suite runs this)
    python tools/gpu_check.py --out gpu_check.json # the figures as JSON too
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing it

import pyarrow as pa  # noqa: E402
import torch  # noqa: E402

PROMPTS = REPO / "data" / "examples" / "pairs.jsonl"


def small_world(cache: Path):
    """A tiny world that builds in seconds (the test suite's size, with room for the judge's prompts in its
    context); ``demo`` is configs/tiny.yaml's."""
    from ouro_ray.config.world import CorpusConfig, JudgeModelConfig, PretrainConfig, TinyModelConfig, WorldConfig

    return WorldConfig(corpus=CorpusConfig(n_dialogs=160),
                       model=TinyModelConfig(vocab_size=512, hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1,
                                             intermediate_size=128, max_seq_len=512),
                       pretrain=PretrainConfig(steps=40, batch_size=8, lr=3e-3, warmup_steps=5, log_every=10),
                       judge=JudgeModelConfig(enabled=False), cache_dir=str(cache))


def model_dir(args) -> str:
    if args.model:
        return args.model
    from ouro_ray.config.world import WorldConfig
    from ouro_ray.world import build_tiny_world

    cache = Path(args.work or tempfile.mkdtemp(prefix="ouro-gpu-check-"))
    cfg = small_world(cache) if args.world == "small" else WorldConfig(cache_dir=str(cache))
    started = time.perf_counter()
    world = build_tiny_world(cfg, 0, progress=lambda _: None)
    print(f"tiny world ({args.world}) built in {time.perf_counter() - started:.1f} s: {world.model_dir}")
    return str(world.model_dir)


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of the phase: CUDA allocations on a GPU, the process's peak RSS on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_phase(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    return time.perf_counter()


def end_phase(device: torch.device, started: float) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def rollout(path: str, args, device: torch.device):
    from ouro_ray.config.roles import SamplingConfig
    from ouro_ray.models.load import encode_prompts, load_causal_lm
    from ouro_ray.rollout.transformers_backend import TransformersBackend

    model, tokenizer = load_causal_lm(path, dtype=args.dtype, device=str(device))
    backend = TransformersBackend(model, tokenizer)
    lines = [json.loads(line)["prompt"] for line in PROMPTS.read_text().splitlines() if line.strip()]
    prompts = [lines[i % len(lines)] for i in range(args.prompts)]
    ids = encode_prompts(tokenizer, prompts)
    sampling = SamplingConfig(n=args.n, temperature=1.0, max_new_tokens=args.max_new_tokens)
    backend.generate(ids[:1], SamplingConfig(n=1, max_new_tokens=4), seed=0)  # warm-up: kernels, caches
    started = start_phase(device)
    cands = backend.generate(ids, sampling, seed=1)
    seconds = end_phase(device, started)
    tokens = sum(len(c.token_ids) for c in cands)
    figures = {"candidates": len(cands), "tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds,
               "peak_memory_mb": peak_memory_mb(device)}
    return model, tokenizer, prompts, cands, figures


def judge(model, tokenizer, prompts, cands, args, device: torch.device) -> dict:
    from ouro_ray.judges.llm import LLMJudge
    from ouro_ray.judges.protocol import JudgeItem

    items = [JudgeItem(prompt_id=f"p{c.prompt_index}", candidate_id=f"c{i}", prompt=prompts[c.prompt_index],
                       candidate=c.text) for i, c in enumerate(cands)]
    llm = LLMJudge(model, tokenizer, batch_size=args.judge_batch)
    started = start_phase(device)
    verdicts = llm.score(items)
    seconds = end_phase(device, started)
    n_prompts = len(items) * len(llm.dimensions)
    return {"items": len(verdicts), "judge_prompts": n_prompts, "seconds": seconds,
            "judge_prompts_per_s": n_prompts / seconds, "peak_memory_mb": peak_memory_mb(device)}


def preference_batch(model, tokenizer, prompts, cands, n: int) -> pa.Table:
    """Each prompt's first candidate over its second, with the initial weights' logprobs as the reference."""
    from ouro_ray.data.tensors import pad_lists, unpad_to_lists
    from ouro_ray.learner.batches import preference_batch as build
    from ouro_ray.learner.batches import tokenize_pairs
    from ouro_ray.models.logprobs import response_logprobs_batched

    rows = [(prompts[i], cands[i * n].text, cands[i * n + 1].text) for i in range(len(prompts))]
    pairs = pa.table({"prompt_id": [f"p{i}" for i in range(len(rows))], "prompt": [r[0] for r in rows],
                      "chosen": [r[1] for r in rows], "rejected": [r[2] for r in rows]})
    sides = tokenize_pairs(pairs, tokenizer)
    device = next(model.parameters()).device
    refs = []
    for side in sides:
        p_ids, p_mask = pad_lists(side.column("prompt_token_ids"), pad_value=tokenizer.pad_token_id, side="left")
        t_ids, t_mask = pad_lists(side.column("token_ids"), pad_value=tokenizer.pad_token_id, side="right")
        logp = response_logprobs_batched(model, p_ids.to(device), p_mask.to(device), t_ids.to(device),
                                         t_mask.to(device)).float().cpu()
        refs.append(pa.table({"ref_logprobs": unpad_to_lists(logp, t_mask.cpu(), pa.float32())}))
    return build(sides[0], sides[1], refs[0], refs[1], prompt_ids=pairs.column("prompt_id").combine_chunks())


def learner(path: str, batch: pa.Table, args, device: torch.device) -> dict:
    from ouro_ray.config.learner import DeepSpeedConfig, LearnerConfig, OptimConfig
    from ouro_ray.learner.learner import PolicyLearner

    try:
        import deepspeed  # noqa: F401

        zero = device.type == "cuda"  # on the CPU the check stays plain: DeepSpeed's CPU ops JIT-build for minutes
    except ImportError:
        zero = False
    cfg = LearnerConfig(algo="dpo", num_workers=0, strategy="deepspeed" if zero else "ddp",
                        deepspeed=DeepSpeedConfig(stage=3, bf16=True),
                        optim=OptimConfig(lr=1e-5, micro_batch_size=args.micro_batch))
    started = start_phase(device)
    policy = PolicyLearner(cfg, path, device=str(device))
    setup = end_phase(device, started)
    how = ("DeepSpeed ZeRO-3, bf16, 1 device" if zero else
           "plain torch step under bf16 autocast (DeepSpeed " + ("not used on the CPU)" if device.type == "cpu"
                                                                  else "not installed)"))
    steps = []
    metrics: dict = {}
    for _ in range(args.steps):
        started = start_phase(device)
        if zero:
            metrics = policy.update(batch)
        else:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                metrics = policy.update(batch)
        steps.append(end_phase(device, started))
    return {"strategy": how, "setup_seconds": setup, "step_seconds": steps, "rows": batch.num_rows,
            "tokens_per_s": metrics.get("tokens_per_s"), "loss": metrics.get("loss"),
            "peak_memory_mb": peak_memory_mb(device)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="where to run (default: cuda)")
    p.add_argument("--model", help="a Hugging Face model directory (default: build the tiny world)")
    p.add_argument("--world", choices=("small", "demo"), default="small", help="tiny-world size (default: small)")
    p.add_argument("--work", help="where the tiny world is built (default: a new temporary directory)")
    p.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16",
                   help="rollout and judge weights (default: bfloat16)")
    p.add_argument("--prompts", type=int, default=32, help="rollout prompts (default: 32)")
    p.add_argument("--n", type=int, default=4, help="candidates per prompt, at least 2 (default: 4)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="longest candidate (default: 64)")
    p.add_argument("--judge-batch", type=int, default=32, help="judge prompts per forward pass (default: 32)")
    p.add_argument("--micro-batch", type=int, default=8, help="learner rows per forward/backward (default: 8)")
    p.add_argument("--steps", type=int, default=3, help="learner steps timed (default: 3)")
    p.add_argument("--out", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.n < 2 or args.prompts < 1 or args.steps < 1:
        p.error("--n must be at least 2 (a pair per prompt), --prompts and --steps at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device visible to torch {torch.__version__} (CUDA build: {torch.version.cuda}); "
              "fix: run on a GPU machine with a CUDA build of torch, or pass --device cpu to check the steps on the "
              "CPU", file=sys.stderr)
        return 2
    device = torch.device("cuda", 0) if args.device == "cuda" else torch.device("cpu")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"torch {torch.__version__} on {device} ({where})")
    path = model_dir(args)
    model, tokenizer, prompts, cands, rollout_figures = rollout(path, args, device)
    print(f"rollout  {rollout_figures['tokens']} tokens in {rollout_figures['seconds']:.2f} s: "
          f"{rollout_figures['tokens_per_s']:.0f} tokens/s, peak {rollout_figures['peak_memory_mb']:.0f} MiB")
    judge_figures = judge(model, tokenizer, prompts, cands, args, device)
    print(f"judge    {judge_figures['judge_prompts']} judge prompts in {judge_figures['seconds']:.2f} s: "
          f"{judge_figures['judge_prompts_per_s']:.1f}/s, peak {judge_figures['peak_memory_mb']:.0f} MiB")
    batch = preference_batch(model, tokenizer, prompts, cands, args.n)
    del model
    learner_figures = learner(path, batch, args, device)
    steps = ", ".join(f"{s:.3f}" for s in learner_figures["step_seconds"])
    print(f"learner  {learner_figures['strategy']}: setup {learner_figures['setup_seconds']:.1f} s, steps {steps} s "
          f"({learner_figures['rows']} pairs), {learner_figures['tokens_per_s']:.0f} tokens/s, "
          f"peak {learner_figures['peak_memory_mb']:.0f} MiB")
    figures = {"device": str(device), "device_name": where, "torch": torch.__version__, "model": path,
               "rollout": rollout_figures, "judge": judge_figures, "learner": learner_figures}
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
