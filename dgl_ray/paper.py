"""The paper's reduction rules (PROTOCOLS.md): every threshold that classifies a run, in one place.

Tables, searchers, family defaults, report prose and the campaign read these names; a number typed
anywhere else is a second copy that can drift. Errors are test errors in [0, 1].
"""
from __future__ import annotations

L_MAX = 0.20            # ordered / L branch: final error <= 0.20
H_MIN = 0.40            # collapsed / H branch: final error >= 0.40 (also the boundary fit's outcome)
T_MIN = 0.85            # trap (part of H): error >= 0.85
ESCAPE_BELOW = 0.60     # trap escape (Tδ): escaped if the final error < 0.60
CONVERGED_BELOW = 0.20  # critical slowing (exp K): first epoch with error < 0.20
SPINODAL_UP = 0.40      # a ladder going up crosses when error > 0.40 ...
SPINODAL_DOWN = 0.25    # ... a ladder going down when error < 0.25 ...
SPINODAL_RUN = 3        # ... at the 3rd consecutive step
DEATH_MIN = 0.40        # survival: dead at DEATH_RUN consecutive evaluations >= 0.40
DEATH_RUN = 5

# preparation checkpoints of the chained protocols (Tα/R1/R3/W2): kept if error < / >= these
ORDERED_ACCEPT = L_MAX      # ordered checkpoint: error < 0.20
COLLAPSE_ACCEPT = H_MIN     # collapse checkpoint: error >= 0.40
TRAP_ACCEPT = T_MIN         # trapped checkpoint (Tδ): error >= 0.85

# A run's boundary outcome (the adaptive design's three outcomes): "T" (trap) is a kind of "H", which the
# boundary counts as H and the design also models on its own.
OUTCOMES = ("not_H", "H", "T")


def outcome_of(error: float) -> str:
    """The boundary outcome of a final test error: "T" if >= T_MIN, "H" if >= H_MIN, else "not_H".
    A diverged run (NaN) has none: ValueError (callers skip diverged runs)."""
    if error != error:
        raise ValueError("a diverged run (test error NaN) has no boundary outcome")
    return "T" if error >= T_MIN else "H" if error >= H_MIN else "not_H"
