"""Weak-to-strong measurements: how much of the gap between a weak teacher and a strong ceiling a
student taught only by the teacher recovers (Burns et al. 2023).

With `weak_to_strong: true` (`experiment=weak_to_strong`), every generation after the first
takes the best-scoring student (a candidate whose genome distils from the incumbent, the weak
teacher), trains its ceiling twin (the same genome, seed and inheritance, on the gold labels), and
measures all three on the hidden truth split:

    PGR = (acc_student - acc_weak) / (acc_ceiling - acc_weak)

PGR is undefined (left out of the metrics, with the reason) when the ceiling beats the teacher by
less than `MIN_GAP`: the ratio of two small differences is noise. Agreement is how often the
student answers as the teacher does; error imitation is how often it does so where the teacher is
wrong (copying the teacher's mistakes rather than generalising past them).

Like the truth evaluator, these numbers feed only the ledger and the report, never the loop.
"""

from __future__ import annotations

from torch import nn

from evaluators.predict import logits
from loop.stages import Split

MIN_GAP = 0.05  # acc_ceiling - acc_weak below this: PGR undefined


def w2s_metrics(teacher: nn.Module, student: nn.Module, ceiling: nn.Module, truth: Split) -> tuple[dict[str, float], str]:
    """The weak-to-strong metrics on the truth split, and one sentence saying what they show."""
    weak_pred, student_pred, ceiling_pred = (logits(m, truth.x).argmax(1) for m in (teacher, student, ceiling))
    weak, strong, top = ((p == truth.y).float().mean().item() for p in (weak_pred, student_pred, ceiling_pred))
    agree = student_pred == weak_pred
    teacher_wrong = weak_pred != truth.y
    metrics = {"w2s/weak": weak, "w2s/student": strong, "w2s/ceiling": top,
               "w2s/agreement": agree.float().mean().item(),
               "w2s/error_imitation": agree[teacher_wrong].float().mean().item() if teacher_wrong.any() else 0.0}
    if top - weak < MIN_GAP:
        return metrics, (f"weak-to-strong: PGR undefined (ceiling {top:.3f} - weak {weak:.3f} < {MIN_GAP}); "
                         f"student {strong:.3f}")
    metrics["w2s/pgr"] = (strong - weak) / (top - weak)
    return metrics, (f"weak-to-strong: PGR {metrics['w2s/pgr']:.2f} (weak {weak:.3f}, student {strong:.3f}, "
                     f"ceiling {top:.3f}); agreement {metrics['w2s/agreement']:.2f}, "
                     f"error imitation {metrics['w2s/error_imitation']:.2f}")


def error_inheritance(child: nn.Module, parent: nn.Module, truth: Split) -> dict[str, float]:
    """Does a successor repeat its parent's mistakes? On the truth split: how often it is wrong
    (`truth/error_base`) and how often it is wrong where its parent is (`truth/error_inheritance`;
    left out when the parent is never wrong). Inheritance well above the base rate: errors carried
    down the lineage rather than independent ones (`error_inheritance: true`, experiment=self_confirming)."""
    child_wrong, parent_wrong = ((logits(m, truth.x).argmax(1) != truth.y) for m in (child, parent))
    metrics = {"truth/error_base": child_wrong.float().mean().item()}
    if parent_wrong.any():
        metrics["truth/error_inheritance"] = child_wrong[parent_wrong].float().mean().item()
    return metrics


def ceiling_genome(genome):
    """The student's twin trained on the gold labels: the same genome without the teacher."""
    return genome.replace(recipe={"distill": 0.0})
