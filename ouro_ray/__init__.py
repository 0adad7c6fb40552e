"""ouro-ray: the Ouroboros alignment loop on Ray (dialogue → distill → labyrinth → regenerate →
score → update → replay), its roles as Ray actors exchanging Arrow batches."""

__version__ = "0.1.0"
