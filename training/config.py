"""TrainConfig: every training hyperparameter in one frozen, keyword-only object."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from p2pdetect.features.config import check_param, is_int, is_num


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """LightGBM and split settings; a bundle records them with its training data.

    The defaults keep the model small (at most max_rounds trees of num_leaves leaves), so one
    core scores over a million flows a second, and they stop early on a held-out group of
    captures. Class imbalance is handled with scale_pos_weight = negatives / positives.

    valid_fraction: share of captures (not flows) held out for early stopping and the threshold.
    target_fpr: false-positive rate the decision threshold aims at, on out-of-fold scores of
        every training capture (threshold_folds grouped folds; 0 = on the validation captures),
        on all negatives and on each label source's. 0.3 %, the real captures' target: with
        corroboration, 0.5 % flagged 19 of the 2,713 real ordinary flows out of fold, 0.3 % 10,
        for 0-2 points of flow recall with each implementation left out (docs/evaluation.md).
    port_features: False trains without the coarse port facts (the port ablation).
    port_number_features: False trains without the facts that say which port a flow uses (below
        1024 or not: src_port_wellknown, dst_port_wellknown, both_ports_ephemeral); how a host
        uses its ports (tcp_udp_same_port, host_high_port_peers) stays. To them a peer listening
        on 443, 80 or 25 is a server: with them a libtorrent-left-out model called a 16 MB MSE
        transfer to a peer on port 25 ordinary at 0.003, nearly all of it from
        dst_port_wellknown. On by default: leaving each implementation out (3 seeds), the model
        without them found more of BiglyBT (85.2 -> 90.7 % of flows), ctorrent and WebTorrent,
        but less of libtorrent (89.3 -> 85.5 %, bytes 82.2 -> 73.2 %) and flagged more real
        ordinary flows (8 -> 10 of 2,713, over the 0.3 % target; docs/evaluation.md, session 13).
    port_number_gain: each split on a port-number fact (above) counts this share of its gain
        (LightGBM feature_contri), so the trees use which port a flow is on only where how the
        flow and its hosts behave does not tell as well (1 = as any feature). 0.3: leaving each
        implementation out (3 seeds), BiglyBT 85.2 -> 89.3 % of flows, ctorrent 95.6 -> 97.2 %,
        WebTorrent unchanged, libtorrent 89.3 -> 87.7 % (bytes 82.2 -> 76.5 %), real ordinary
        flows flagged 8 -> 6 of 2,713 (docs/evaluation.md, session 14).
    timing_features: True also trains on features that measure absolute time (durations,
        inter-arrival times, the RTT estimate). Off by default: they describe the network path as
        much as the application, and leaving one network class out (loopback, wan-low/mid/high,
        lossy) the model without them was as good or better (loopback 92.4 % vs 91.3 % recall,
        wan-low 97.4 % vs 94.8 %, docs/evaluation.md); RTT-relative timings stay either way.
    sequence_features: True also trains on the size and direction of each of the first 32
        packets (splt_ps_i, splt_dir_i). Off by default: they spell out one implementation's
        message layout, and leaving an implementation out the model without them found more
        of it at a lower FPR (libtorrent left out 58.4 % -> 68.9 % flow recall, BiglyBT 96.5 %
        -> 97.9 %, ctorrent 96.6 % -> 97.7 %; FPR real captures 0.22 % -> 0.11 %;
        docs/evaluation.md). Nor on the sizes of the first two payload packets
        (hs_first/second_payload_size), one message each: leaving aMule out, the family the
        BitTorrent data never showed, the model without them found 71.7 % of its flows instead
        of 61.3 % (3 seeds; libtorrent 92.1 -> 93.7 %, bytes 86.4 -> 90.1 %; session 21).
        Their summaries (entropy, direction changes, where and which way payload starts) stay.
    early_weight: weight of an early snapshot row (a flow as it looked after the extract
        config's snapshot_packets packets) against its final row: enough for early verdicts
        to be right (recall 77 % -> 99 % at 32 packets, measured), small enough that final
        verdicts and the real captures' false positives stay where they were (docs/evaluation.md).
    capture_weight_power: each flow weighs n^-p where n is its capture's flow count, so a few
        large generated captures do not drown many small real ones (0 = every flow alike).
    stratum_weight_power: the ordinary flows of each label stratum (the real captures' nDPI
        labels, the generator's labels file) weigh n^-p where n is the stratum's ordinary flow
        count, so the few thousand real ordinary flows are not outweighed ten to one by the
        generated ones (0 = every flow alike, 1 = each stratum's negatives weigh the same).
        Off by default: with each implementation left out, 0.5 and 1 found 1-2 points more
        P2P flows but flagged more generated ordinary flows (6 and 19 of 27,581 vs 0) and no
        fewer real ones (15, 16 vs 14 of 2,713).
    bags: the model is the average of this many boosters that differ only in their random seed
        (row bagging and feature sampling), merged into one forest of bags x rounds trees with
        each leaf scaled by 1 / bags (training.train.average_boosters): the same scores as
        averaging their raw outputs, scored by one predictor. 1 = a single booster.
    isolated_weight: every training flow is also trained on as it would look with no earlier
        flow of its endpoints or hosts (no host evidence: a one-flow capture, a host's first
        flow), with this weight against the original (training.train.with_isolated_copies);
        0 = off. Off by default: at 0.5, leaving each implementation out (3 seeds), more bytes
        of ctorrent and libtorrent were found (97.9 and 81.9 % vs 94.8 and 76.5 %) but fewer
        flows of BiglyBT and ctorrent, and real ordinary flows flagged rose from 6 to 8.3 of
        2,713 (two seeds over 0.3 %; docs/evaluation.md, session 15).
    threshold_runs: the threshold is the median of this many out-of-fold runs (threshold_folds
        grouped folds each; run r draws its folds and boosters with seed + r), each chosen as one
        run is; the final model is the same. With 2,713 real ordinary flows the 0.3 % target allows
        8, and a few hosts' clusters of raised flows decide which 8: one run's threshold moved
        0.952-0.970 with the seed alone, 0.932-0.978 with a host column that raises such hosts
        (docs/evaluation.md, session 25). 1 = one run.
    corroborate_peers: a flow the model calls P2P is flagged on its own score only when one of
        its hosts has flows called P2P with this many distinct peers, counting it
        (models.host_evidence; 1 = off). The bundle records it: the threshold is chosen with it.
    """

    num_leaves: int = 15
    learning_rate: float = 0.2
    max_rounds: int = 40
    bags: int = 1
    isolated_weight: float = 0.0
    early_stopping_rounds: int = 10
    min_child_samples: int = 20
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    balance_classes: bool = True
    capture_weight_power: float = 0.0
    stratum_weight_power: float = 0.0
    early_weight: float = 0.15
    valid_fraction: float = 0.25
    target_fpr: float = 0.003
    corroborate_peers: int = 2
    threshold_folds: int = 4
    threshold_runs: int = 1
    port_features: bool = True
    port_number_features: bool = True
    port_number_gain: float = 0.3
    timing_features: bool = False
    sequence_features: bool = False
    seed: int = 0
    num_threads: int = 2

    def __post_init__(self) -> None:
        own = type(self).__name__
        check_param(own, "num_leaves", self.num_leaves,
                    is_int(self.num_leaves) and 2 <= self.num_leaves <= 1024, "an int in [2, 1024]")
        check_param(own, "learning_rate", self.learning_rate,
                    is_num(self.learning_rate) and 0 < self.learning_rate <= 1, "a number in (0, 1]")
        check_param(own, "max_rounds", self.max_rounds,
                    is_int(self.max_rounds) and 1 <= self.max_rounds <= 10000, "an int in [1, 10000]")
        check_param(own, "bags", self.bags, is_int(self.bags) and 1 <= self.bags <= 16, "an int in [1, 16]")
        check_param(own, "isolated_weight", self.isolated_weight,
                    is_num(self.isolated_weight) and 0 <= self.isolated_weight <= 1, "a number in [0, 1]")
        check_param(own, "early_stopping_rounds", self.early_stopping_rounds,
                    is_int(self.early_stopping_rounds) and self.early_stopping_rounds >= 1, "an int >= 1")
        check_param(own, "min_child_samples", self.min_child_samples,
                    is_int(self.min_child_samples) and self.min_child_samples >= 1, "an int >= 1")
        for name in ("feature_fraction", "bagging_fraction"):
            v = getattr(self, name)
            check_param(own, name, v, is_num(v) and 0 < v <= 1, "a number in (0, 1]")
        check_param(own, "lambda_l2", self.lambda_l2, is_num(self.lambda_l2) and self.lambda_l2 >= 0,
                    "a number >= 0")
        check_param(own, "balance_classes", self.balance_classes, isinstance(self.balance_classes, bool),
                    "a bool")
        check_param(own, "early_weight", self.early_weight,
                    is_num(self.early_weight) and 0 < self.early_weight <= 1, "a number in (0, 1]")
        check_param(own, "capture_weight_power", self.capture_weight_power,
                    is_num(self.capture_weight_power) and 0 <= self.capture_weight_power <= 1,
                    "a number in [0, 1]")
        check_param(own, "stratum_weight_power", self.stratum_weight_power,
                    is_num(self.stratum_weight_power) and 0 <= self.stratum_weight_power <= 1,
                    "a number in [0, 1]")
        check_param(own, "valid_fraction", self.valid_fraction,
                    is_num(self.valid_fraction) and 0 < self.valid_fraction < 1, "a number in (0, 1)")
        check_param(own, "target_fpr", self.target_fpr,
                    is_num(self.target_fpr) and 0 <= self.target_fpr < 1, "a number in [0, 1)")
        check_param(own, "corroborate_peers", self.corroborate_peers,
                    is_int(self.corroborate_peers) and self.corroborate_peers >= 1, "an int >= 1")
        check_param(own, "threshold_folds", self.threshold_folds,
                    is_int(self.threshold_folds) and (self.threshold_folds == 0 or self.threshold_folds >= 2),
                    "0 or an int >= 2")
        check_param(own, "threshold_runs", self.threshold_runs,
                    is_int(self.threshold_runs) and 1 <= self.threshold_runs <= 16, "an int in [1, 16]")
        check_param(own, "port_features", self.port_features, isinstance(self.port_features, bool), "a bool")
        check_param(own, "port_number_features", self.port_number_features,
                    isinstance(self.port_number_features, bool), "a bool")
        check_param(own, "port_number_gain", self.port_number_gain,
                    is_num(self.port_number_gain) and 0 < self.port_number_gain <= 1, "a number in (0, 1]")
        check_param(own, "timing_features", self.timing_features, isinstance(self.timing_features, bool),
                    "a bool")
        check_param(own, "sequence_features", self.sequence_features,
                    isinstance(self.sequence_features, bool), "a bool")
        check_param(own, "seed", self.seed, is_int(self.seed) and self.seed >= 0, "an int >= 0")
        check_param(own, "num_threads", self.num_threads,
                    is_int(self.num_threads) and self.num_threads >= 1, "an int >= 1")

    def to_dict(self) -> dict:
        return asdict(self)

    def lgb_params(self, scale_pos_weight: float = 1.0, feature_names: list[str] | None = None) -> dict:
        """LightGBM parameters for a binary classifier with these settings (feature_names: the
        model's features, in order, for the port-number facts' share of split gain)."""
        extra = {}
        if feature_names is not None and self.port_number_gain < 1:
            from p2pdetect.features.schema import PORT_NUMBER_FEATURES

            extra["feature_contri"] = [self.port_number_gain if n in PORT_NUMBER_FEATURES else 1.0
                                       for n in feature_names]
        return {**extra,
            "objective": "binary",
            "metric": ["binary_logloss", "auc"],
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1 if self.bagging_fraction < 1 else 0,
            "lambda_l2": self.lambda_l2,
            "scale_pos_weight": scale_pos_weight,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.num_threads,
            "verbosity": -1,
        }
