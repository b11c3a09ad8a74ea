"""The run side: config validation (:mod:`~sims.run.study`), seeding, the Monte Carlo runner,
progress, the results store and its writer, and the command-line entry points."""
