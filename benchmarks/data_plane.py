"""data-plane: an Arrow candidates batch handed from one actor to another through the object store
÷ the same content as a pickled Python dict of lists; and whether the consumer's read is zero-copy.

A producer actor builds a ``candidates`` table (``SHARDS['candidates']``: int32 token-id lists,
float32 logprob lists, text, …) of ``MB`` megabytes of Arrow buffers, and once, outside the timed
part, the same content as ``table.to_pydict()``. One hand-over, timed from the driver's request to the
consumer's answer: the producer ``ray.put``s the object and returns the reference (boxed, so that the
consumer does the ``ray.get`` itself), the consumer gets it and reads it (the sum of every token id,
the sum of every logprob, the text's byte count) and answers. Arrow and dict rounds alternate.

Zero-copy evidence, measured in the consumer around its ``ray.get`` of the Arrow table: bytes the
Arrow memory pool allocated (``pa.total_allocated_bytes()``), growth of the process's anonymous
resident memory (``RssAnon``: a copy would land there) and the share of the table's buffer bytes whose
address lies in a shared-memory mapping of the object store (``/dev/shm``) in ``/proc/self/maps``.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from benchmarks.harness import Context, alternate, ratio_stats, ray_cluster, section, spread

SUITE = "data-plane"
FULL_MB, QUICK_MB = 256, 32
TIMEOUT_S = 600.0
BYTES_PER_ROW = 4 * 64 + 4 * 256 * 2 + 4 * 256 + 2 * 4 * 4 + 16
"""Mean Arrow bytes of one row below: 64 prompt ids, 256 candidate ids and logprobs, ~4 text bytes a
token, four int32 offsets, ids and version."""


def _lists(lengths: np.ndarray, values: np.ndarray, value_type: pa.DataType) -> pa.ListArray:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, value_type))


def candidates_batch(mb: float, seed: int = 0) -> pa.Table:
    """A ``candidates`` table of about ``mb`` MB (10^6 bytes) of seeded random content."""
    from ouro_ray.data.schemas import SHARDS

    if not mb > 0:
        raise ValueError(f"batch size {mb!r} MB: must be > 0; fix: pass a positive size such as {QUICK_MB}")
    rng = np.random.default_rng(seed)
    rows = max(1, int(mb * 1e6 / BYTES_PER_ROW))
    prompt_len = rng.integers(32, 97, rows)  # (B,) P_i
    cand_len = rng.integers(128, 385, rows)  # (B,) T_i
    text_len = cand_len * 4
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     ", np.uint8)
    text_bytes = letters[rng.integers(0, len(letters), int(text_len.sum()))]
    text_offsets = np.concatenate([[0], np.cumsum(text_len)]).astype(np.int32)
    text = pa.StringArray.from_buffers(rows, pa.py_buffer(text_offsets), pa.py_buffer(text_bytes.tobytes()))
    table = pa.table({
        "prompt_id": pa.array([f"p{i // 4}" for i in range(rows)], pa.string()),
        "candidate_id": pa.array([f"c{i % 4}" for i in range(rows)], pa.string()),
        "text": text,
        "prompt_token_ids": _lists(prompt_len, rng.integers(3, 32000, int(prompt_len.sum()), dtype=np.int32), pa.int32()),
        "token_ids": _lists(cand_len, rng.integers(3, 32000, int(cand_len.sum()), dtype=np.int32), pa.int32()),
        "logprobs": _lists(cand_len, -rng.exponential(1.0, int(cand_len.sum())).astype(np.float32), pa.float32()),
        "policy_version": pa.array(np.ones(rows, np.int64)),
    }, schema=SHARDS["candidates"].schema)
    return table


class Producer:
    """Holds the batch as an Arrow table and as a dict of lists; hands either over by reference."""

    def __init__(self, mb: float, seed: int):
        self.table = candidates_batch(mb, seed)
        self.pydict = self.table.to_pydict()

    def info(self) -> dict:
        return {"rows": self.table.num_rows, "arrow_bytes": self.table.nbytes}

    def emit(self, kind: str) -> list:
        import ray

        return [ray.put(self.table if kind == "arrow" else self.pydict)]  # boxed: the consumer gets it itself


def _rss_anon() -> int:
    """Anonymous resident bytes of this process (where a copy of the batch would land)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def _shared_ranges() -> list[tuple[int, int, str]]:
    """``(start, end, path)`` of the mappings of the object store's shared memory in this process."""
    ranges = []
    with open("/proc/self/maps") as fh:
        for line in fh:
            parts = line.split(maxsplit=5)
            path = parts[5].strip() if len(parts) == 6 else ""
            if path.startswith("/dev/shm") or "plasma" in path:
                start, end = (int(x, 16) for x in parts[0].split("-"))
                ranges.append((start, end, path))
    return ranges


def shared_share(table: pa.Table) -> tuple[float, list[str]]:
    """Share of ``table``'s buffer bytes inside the object store's shared mappings, and those mappings."""
    ranges = _shared_ranges()
    total = inside = 0
    hit: set[str] = set()
    for column in table.columns:
        for chunk in column.chunks:
            for buf in chunk.buffers():
                if buf is None or buf.size == 0:
                    continue
                total += buf.size
                for start, end, path in ranges:
                    if start <= buf.address < end:
                        inside += buf.size
                        hit.add(path)
                        break
    return (inside / total if total else 0.0), sorted(hit)


def _arrow_read(table: pa.Table) -> dict:
    import pyarrow.compute as pc

    def flat_sum(name: str) -> float:
        return sum(pc.sum(chunk.flatten()).as_py() or 0 for chunk in table.column(name).chunks)

    text_bytes = sum(pc.sum(pc.binary_length(chunk)).as_py() or 0 for chunk in table.column("text").chunks)
    return {"token_sum": int(flat_sum("token_ids")), "logprob_sum": float(flat_sum("logprobs")), "text_bytes": text_bytes}


def _dict_read(d: dict) -> dict:
    return {"token_sum": int(sum(map(sum, d["token_ids"]))), "logprob_sum": float(sum(map(sum, d["logprobs"]))),
            "text_bytes": sum(len(t.encode()) for t in d["text"])}


class Consumer:
    """Gets a handed-over batch and reads it; reports what the get cost in memory."""

    def read(self, box: list) -> dict:
        import ray

        pool, anon = pa.total_allocated_bytes(), _rss_anon()
        start = time.perf_counter()
        obj = ray.get(box[0], timeout=TIMEOUT_S)
        get_s = time.perf_counter() - start
        out = {"get_s": get_s, "arrow_pool_bytes": pa.total_allocated_bytes() - pool, "rss_anon_bytes": _rss_anon() - anon}
        if isinstance(obj, pa.Table):
            out["shared_share"], out["mappings"] = shared_share(obj)
            out["mutable_buffers"] = sum(b.is_mutable for c in obj.columns for ch in c.chunks
                                         for b in ch.buffers() if b is not None)
            out |= _arrow_read(obj)
        else:
            out |= _dict_read(obj)
        return out


def run(ctx: Context) -> dict:
    import ray

    mb = QUICK_MB if ctx.quick else FULL_MB
    answers: dict[str, list[dict]] = {"arrow": [], "dict": []}
    with ray_cluster(ctx):
        producer = ray.remote(Producer).options(num_cpus=0.5).remote(mb, ctx.seed)
        consumer = ray.remote(Consumer).options(num_cpus=0.5).remote()
        try:
            batch = ray.get(producer.info.remote(), timeout=TIMEOUT_S)

            def hand_over(kind: str):
                def once() -> float:
                    start = time.perf_counter()
                    answer = ray.get(consumer.read.remote(producer.emit.remote(kind)), timeout=TIMEOUT_S)
                    seconds = time.perf_counter() - start
                    answers[kind].append(answer)
                    return seconds
                return once

            arrow_s, dict_s = alternate(hand_over("arrow"), hand_over("dict"), reps=ctx.reps)
        finally:
            for actor in (producer, consumer):
                ray.kill(actor, no_restart=True)
    a, d = answers["arrow"][-1], answers["dict"][-1]
    if a["token_sum"] != d["token_sum"] or a["text_bytes"] != d["text_bytes"]:
        raise RuntimeError(f"the Arrow and dict reads disagree: {a} vs {d}")
    arrow = answers["arrow"][-ctx.reps:]
    size_mb = batch["arrow_bytes"] / 1e6
    pool = max(x["arrow_pool_bytes"] for x in arrow)
    anon = max(x["rss_anon_bytes"] for x in arrow)
    share = min(x["shared_share"] for x in arrow)
    zero_copy = pool < 0.01 * batch["arrow_bytes"] and anon < 0.1 * batch["arrow_bytes"] and share > 0.99
    evidence = {"arrow_pool_bytes_allocated_on_get_max": pool, "rss_anon_growth_on_get_max_bytes": anon,
                "buffer_bytes_in_object_store_mapping_min_share": share, "mappings": arrow[-1]["mappings"],
                "mutable_buffers": arrow[-1]["mutable_buffers"], "batch_bytes": batch["arrow_bytes"],
                "dict_rss_anon_growth_on_get_max_bytes": max(x["rss_anon_bytes"] for x in answers["dict"][-ctx.reps:])}
    return section(
        SUITE, ratio_name="arrow hand-over / dict hand-over", ratio=ratio_stats(arrow_s, dict_s),
        absolute={"arrow_s": spread(arrow_s), "dict_s": spread(dict_s),
                  "arrow_mb_per_s": spread([size_mb / s for s in arrow_s]),
                  "dict_mb_per_s": spread([size_mb / s for s in dict_s]),
                  "arrow_consumer_get_s": spread([x["get_s"] for x in arrow]),
                  "dict_consumer_get_s": spread([x["get_s"] for x in answers["dict"][-ctx.reps:]]),
                  "zero_copy": zero_copy, "zero_copy_evidence": evidence},
        params={"batch_mb": round(size_mb, 1), "rows": batch["rows"], "shard": "candidates", "reps": ctx.reps},
        notes=["timed: driver request -> producer ray.put -> consumer ray.get + read (sums of token ids, logprobs, "
               "text bytes) -> answer; MB/s use the Arrow buffer bytes for both sides",
               "zero_copy: Arrow pool allocations < 1% and RssAnon growth < 10% of the batch on get, and > 99% of "
               "buffer bytes inside the object store's /dev/shm mapping"])
