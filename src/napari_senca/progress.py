"""Progress reports of a run, and one fraction of the whole run over its stages.

:func:`~napari_senca.pipeline.run_senca_iter` yields :class:`Progress`; the
widget's single bar and the CLI's progress line read :attr:`Progress.overall`,
which :class:`OverallProgress` sets from the per-stage reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Progress", "STAGE_WEIGHTS", "OverallProgress"]


@dataclass
class Progress:
    """One progress report.

    Attributes
    ----------
    stage
        ``"preprocess"``, ``"patches"``, ``"train"`` or ``"cluster"``.
    step, total
        Position within the stage (e.g. epoch 3 of 10).
    message
        Human-readable one-liner.
    losses
        Mean losses of the epoch (``total``, ``mse``, ``nt_window``, ``nt_pool``).
    overall
        Fraction of the whole run done, 0..1, over all stages (weighted by
        :data:`STAGE_WEIGHTS`) and never decreasing; set by :func:`~napari_senca.pipeline.run_senca_iter`.
    """

    stage: str
    step: int
    total: int
    message: str
    losses: dict[str, float] = field(default_factory=dict)
    overall: float = 0.0

    @property
    def fraction(self) -> float:
        """Fraction of the current stage done."""
        return self.step / self.total if self.total else 0.0


#: Share of a run's time per stage, from the measured time split (docs/benchmarks.md, CPU,
#: default settings: patches/train 4.7/4.3 s on A1, 64/130 s on DLPFC, 72/138 s on 5,000
#: spots; preprocess and cluster 1-5 % on RNA-only sections). The image stage counts only
#: when the H&E is used; the shares of the stages that run are normalised to 1.
STAGE_WEIGHTS: dict[str, float] = {"preprocess": 0.03, "patches": 0.35, "train": 0.60, "cluster": 0.02}


class OverallProgress:
    """Turns per-stage :class:`Progress` reports into one fraction of the run.

    Stages run in the order of :data:`STAGE_WEIGHTS`; ``use_image=False``
    drops the image stage. A report with ``total == 0`` says its stage was
    skipped (random image weights that do not count are not encoded): its
    share goes to the stages after it, so the bar does not jump over it.
    Unknown stages keep the fraction where it is, and the fraction never
    goes down.
    """

    def __init__(self, use_image: bool) -> None:
        self.value = 0.0
        self._layout([s for s in STAGE_WEIGHTS if use_image or s != "patches"], 0.0)

    def _layout(self, stages: list[str], start: float) -> None:
        """Spread ``1 - start`` over ``stages`` in proportion to their weights."""
        total = sum(STAGE_WEIGHTS[s] for s in stages)
        self.start: dict[str, float] = {}
        self.weight: dict[str, float] = {}
        acc = start
        for st in stages:
            self.start[st], self.weight[st] = acc, (1.0 - start) * STAGE_WEIGHTS[st] / total
            acc += self.weight[st]

    def update(self, p: Progress) -> Progress:
        """Set ``p.overall`` and return ``p``."""
        if p.total == 0 and p.stage in self.start:  # skipped: the later stages share what is left
            later = list(self.start)[list(self.start).index(p.stage) + 1 :]
            self._layout(later, self.value)
        elif p.stage in self.start:
            frac = min(max(p.fraction, 0.0), 1.0)
            self.value = max(self.value, min(1.0, self.start[p.stage] + self.weight[p.stage] * frac))
        p.overall = self.value
        return p
