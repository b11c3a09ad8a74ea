"""Data-generating processes: the protocol (:mod:`sims.dgp.base`), its conformance suite
(:mod:`sims.dgp.checks`) and one module per DGP; ``conf/dgp/<name>.yaml`` names each."""
