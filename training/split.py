"""Splits by capture, never by flow (DESIGN.md invariant 5): one capture's flows stay on one side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

import numpy as np

from p2pdetect.errors import BadDatasetError


@dataclass(frozen=True)
class Split:
    """Row indices of the two sides and the captures on each."""

    train: np.ndarray
    valid: np.ndarray
    train_captures: list[str]
    valid_captures: list[str]

    def summary(self, y: np.ndarray) -> dict:
        """Captures and flows (and p2p flows) per side, for logs and bundle metadata."""
        def side(idx, caps):
            return {"captures": len(caps), "flows": int(len(idx)), "p2p_flows": int(y[idx].sum()),
                    "capture_names": sorted(caps)}
        return {"train": side(self.train, self.train_captures), "valid": side(self.valid, self.valid_captures)}


def capture_sort_key(name: str) -> tuple[str, ...]:
    """Order of captures before a seeded shuffle: by file name, then parent folder, and so on up.

    So a split does not depend on how the paths are spelt (relative to one working directory or
    another, or absolute): `data/corpus/x-s1/x.pcap` and `/srv/p2pdetect/data/corpus/x-s1/x.pcap`
    take the same place among their captures, and the same inputs give the same model from any
    directory. (Sorting the paths as strings put `../shared/...` before `data/...` and
    `/work/main/...` before `/work/shared/...`: another split, another model.)
    """
    return tuple(reversed(PurePath(name).parts))


def _capture_classes(groups: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Captures in capture_sort_key order, each row's capture index, and each capture's class mix."""
    names, inv = np.unique(groups.astype(str), return_inverse=True)
    order = np.array(sorted(range(len(names)), key=lambda i: capture_sort_key(names[i])), dtype=np.int64)
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    uniq, inv = names[order], rank[inv]
    has_p2p = np.bincount(inv, weights=y, minlength=len(uniq)) > 0
    has_other = np.bincount(inv, weights=1 - y, minlength=len(uniq)) > 0
    return uniq, inv, has_p2p.astype(int) * 2 + has_other.astype(int)


def grouped_split(groups: np.ndarray, y: np.ndarray, valid_fraction: float = 0.25,
                  seed: int = 0) -> Split:
    """Hold out about valid_fraction of the captures, stratified by what they contain.

    Captures are bucketed by which classes they hold (p2p only, other only, both) and each
    bucket gives up its share, at least one capture where it has two, so validation sees both
    classes whenever the data allows it.
    """
    y = np.asarray(y).astype(int)
    uniq, inv, kind = _capture_classes(np.asarray(groups), y)
    if len(uniq) < 2:
        raise BadDatasetError(f"training needs flows from at least 2 captures to split by capture; "
                              f"got {len(uniq)}. Add captures")
    rng = np.random.default_rng(seed)
    valid_caps = np.zeros(len(uniq), dtype=bool)
    for k in np.unique(kind):
        members = np.flatnonzero(kind == k)
        rng.shuffle(members)
        take = int(round(valid_fraction * len(members)))
        if len(members) >= 2:
            take = min(max(take, 1), len(members) - 1)
        valid_caps[members[:take]] = True
    if not valid_caps.any():
        valid_caps[rng.integers(len(uniq))] = True
    if valid_caps.all():
        valid_caps[np.flatnonzero(valid_caps)[0]] = False
    valid_rows = valid_caps[inv]
    return Split(train=np.flatnonzero(~valid_rows), valid=np.flatnonzero(valid_rows),
                 train_captures=uniq[~valid_caps].tolist(), valid_captures=uniq[valid_caps].tolist())


def grouped_folds(groups: np.ndarray, y: np.ndarray, n_splits: int = 5, seed: int = 0) -> list[Split]:
    """K folds over captures (each capture tested exactly once), class-mix stratified.

    sklearn's StratifiedGroupKFold on a per-capture class mix, shuffled with seed.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(y).astype(int)
    groups = np.asarray(groups).astype(str)
    uniq, inv, kind = _capture_classes(groups, y)
    n_splits = min(n_splits, len(uniq))
    if n_splits < 2:
        raise BadDatasetError(f"cross-validation needs at least 2 captures; got {len(uniq)}. Add captures")
    folds = []
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    # the captures' indices in capture_sort_key order, not their names: the folds do not depend on
    # how the paths are spelt
    for tr, te in cv.split(np.zeros(len(groups)), kind[inv], inv):
        folds.append(Split(train=tr, valid=te, train_captures=np.unique(groups[tr]).tolist(),
                           valid_captures=np.unique(groups[te]).tolist()))
    return folds
