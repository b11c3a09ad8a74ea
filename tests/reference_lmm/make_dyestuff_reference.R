#!/usr/bin/env Rscript
## lme4's Dyestuff (6 batches x 5 yields, Yield ~ 1 + (1 | Batch)) and its REML fit, for the
## statsmodels MixedLM estimator (estimators/mixedlm.py, tests/estimators/test_mixedlm.py).
##
## Run from the repository root:
##   Rscript tests/reference_lmm/make_dyestuff_reference.R
##
## Output: tests/reference_lmm/data/dyestuff.csv (the data as lme4 ships them) and
##         tests/reference_lmm/dyestuff.csv (term, estimate, std_error, sigma, sd_batch of
##         lmer(Yield ~ 1 + (1 | Batch), REML = TRUE), %.17g).
suppressPackageStartupMessages(library(lme4))

script_dir <- function() {
  args <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", args[grep("^--file=", args)])
  if (length(f) == 1) dirname(normalizePath(f)) else normalizePath("tests/reference_lmm")
}
ref_dir <- script_dir()
write.csv(Dyestuff, file.path(ref_dir, "data", "dyestuff.csv"), row.names = FALSE, quote = FALSE)

fit <- lmer(Yield ~ 1 + (1 | Batch), data = Dyestuff, REML = TRUE)
coefs <- summary(fit)$coefficients
vc <- as.data.frame(VarCorr(fit))
out <- data.frame(term = "Intercept",
                  estimate = sprintf("%.17g", coefs[, "Estimate"]),
                  std_error = sprintf("%.17g", coefs[, "Std. Error"]),
                  sigma = sprintf("%.17g", sigma(fit)),
                  sd_batch = sprintf("%.17g", vc$sdcor[vc$grp == "Batch"]))
write.csv(out, file.path(ref_dir, "dyestuff.csv"), row.names = FALSE, quote = FALSE)
