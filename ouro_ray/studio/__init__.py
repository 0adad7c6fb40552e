"""``ouro studio``: the human feedback studio, a local web app over one ``ouro run`` directory.

Pages (FastAPI + Jinja2, a little vendored JavaScript, nothing fetched from the internet): Chat (stage 1,
talk with the current policy, save the dialogue to the run's chat shard), Distill (stage 2, edit the
summaries), Review (stage 5, score queued candidates 1-5, pick the better of two), Arena (blind votes
between policies on the held-out prompts, with ELO; evaluation only) and Run (metrics, plots, human
minutes). What a person does is appended to ``RUN_DIR/studio/<kind>.jsonl``
(:class:`~ouro_ray.data.studio.StudioLog`) and read by the run's next round.

:func:`~ouro_ray.studio.app.create_app` builds the app; :mod:`~ouro_ray.studio.server` serves it.
"""
