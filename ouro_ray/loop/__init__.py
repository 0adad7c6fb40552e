"""The Ouroboros loop: the seven stages as one round, run by `ouro run`."""
