"""The tiny world's judge, and which judge model a run uses.

``choice``: ``judges.llm.model`` resolved (``auto``: the world's judge for a tiny-world policy, else a
stop naming the choices; ``policy`` only when asked; any model directory). ``answers`` and ``examples``:
the project's judge prompts labelled by the world's ground truth; ``train``: the judge's own tokenizer
and LM trained on them; ``build``: built on first need beside the world's policy and cached there.

It sits above the judges and the stages (it trains on their prompts and challenges) and below the
actors and commands that pick a judge.
"""
