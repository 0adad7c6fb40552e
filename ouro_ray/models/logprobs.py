"""Per-token log-probabilities of candidates given their prompts, in one forward pass.

Notation: ``B`` rows, ``P`` padded prompt length, ``T`` padded candidate length. A row is laid out
as ``[pad… prompt | candidate …pad]`` (prompts left-padded, candidates right-padded), so every
candidate starts at column ``P`` and the logits at columns ``P-1 … P+T-2`` predict it. Position ids
count real tokens only, so padding never shifts a row's positions.

The rollout, the reference and the learner all call this function, so at policy version 0 the
candidates' logprobs and the reference's agree to float rounding (KL 0): the same computation, with
at most different padding widths when rows are batched differently.
"""

from __future__ import annotations

import torch


def response_forward(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    response_ids: torch.Tensor,
    response_mask: torch.Tensor,
    hidden: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(logits, hidden)`` at the positions that predict each response token: (B, T, V) and (B, T, H).

    ``hidden`` (the last layer's states, for a value head) is None unless asked for. This is the one
    place the ``[pad… prompt | candidate …pad]`` layout is defined.
    """
    input_ids = torch.cat([prompt_ids, response_ids], dim=1)  # (B, P+T)
    attention = torch.cat([prompt_mask, response_mask], dim=1).long()  # (B, P+T)
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)  # (B, P+T)
    n_prompt, n_response = prompt_ids.shape[1], response_ids.shape[1]
    # Only the last T+1 positions go through the LM head (columns P-1 … P+T-1): with a real vocabulary
    # (49k for SmolLM2) the prompt's (B, P, V) logits would be most of the memory and none of the use.
    out = model(input_ids=input_ids, attention_mask=attention, position_ids=positions, output_hidden_states=hidden,
                logits_to_keep=n_response + 1)
    window = slice(n_prompt - 1, n_prompt + n_response - 1)  # position P-1+t predicts response token t
    states = out.hidden_states[-1][:, window] if hidden else None  # (B, T, H)
    return out.logits[:, :n_response], states  # kept columns P-1 … P+T-2 (the last one predicts nothing)


def response_logprobs(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    response_ids: torch.Tensor,
    response_mask: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """(B, T) log p(response token t | prompt, earlier tokens); 0 where ``response_mask`` is False.

    ``prompt_ids``/``prompt_mask`` are (B, P) left-padded; ``response_ids``/``response_mask`` (B, T)
    right-padded. Gradients flow when the model requires them (the learner's use).
    """
    logits, _ = response_forward(model, prompt_ids, prompt_mask, response_ids, response_mask)
    logits = logits.float()  # (B, T, V)
    if temperature != 1.0:
        logits = logits / temperature
    logp = torch.log_softmax(logits, dim=-1)
    token_logp = logp.gather(-1, response_ids.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return token_logp * response_mask


@torch.no_grad()
def response_logprobs_batched(model, prompt_ids, prompt_mask, response_ids, response_mask,
                              batch_size: int = 16) -> torch.Tensor:
    """:func:`response_logprobs` without gradients, ``batch_size`` rows at a time (bounded memory)."""
    if batch_size < 1:
        raise ValueError(f"batch_size = {batch_size}: must be >= 1")
    out = torch.zeros(response_ids.shape, dtype=torch.float32)
    for start in range(0, response_ids.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        out[rows] = response_logprobs(model, prompt_ids[rows], prompt_mask[rows], response_ids[rows], response_mask[rows])
    return out
