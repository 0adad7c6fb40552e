"""``ouro compare``: SFT, RLHF, RLAIF and the Ouroboros loop on the same compute, graded independently.

    arms.py    the four arms (config overrides) and the figures one run yields
    run.py     every arm × seed as an ``ouro run``, resumable per arm
    report.py  means over seeds with 95 % intervals, beside the paper's table
"""
