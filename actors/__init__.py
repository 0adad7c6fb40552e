"""The Ray roles of the loop (rollout, reference, reward model, judges, learner).

Each role is a plain class usable in process; its group wraps it with ``ray.remote`` using resources
from config (see STYLE.md #1–#2).
"""
