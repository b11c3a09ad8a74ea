#!/usr/bin/env Rscript
## Reference results for the cluster fixed-effects estimator (estimators/fixed_effects.py, fe_cr1).
##
## Run from the repository root:
##   Rscript tests/reference_fe/make_fe_reference.R
## Inputs : tests/reference/data/*.csv (see tests/reference/README.md)
## Output : tests/reference_fe/fe_cr1.csv
##
## Model: lm(y ~ 0 + factor(<cluster>) + <predictors>), i.e. least squares with one dummy per
## cluster (LSDV; the dummies come first, so that lm aliases a predictor rather than a dummy), and sandwich::vcovCL(fit, cluster = ~<cluster>, type = "HC1"):
##   V = G/(G-1) * (n-1)/(n-K) * (X'X)^-1 sum_g X_g' e_g e_g' X_g (X'X)^-1,
## with K = rank of the LSDV design (slopes + G cluster intercepts). p-values from t(G-1).
## Only the slopes are written. A predictor constant within every cluster is aliased by the
## dummies (lm reports NA): its row has estimate, std_error and p_value NA.
## Conventions as tests/reference/README.md: inputs rounded to 6 decimals after reading,
## numbers written with %.17g, NA for missing, text columns quoted.

suppressPackageStartupMessages(library(sandwich))

args <- commandArgs(trailingOnly = FALSE)
script <- sub("^--file=", "", args[grep("^--file=", args)])
out_dir <- if (length(script) == 1) dirname(normalizePath(script)) else normalizePath("tests/reference_fe")
data_dir <- file.path(dirname(out_dir), "reference", "data")

read_data <- function(name) {
  d <- read.csv(file.path(data_dir, paste0(name, ".csv")))
  for (v in names(d)) if (is.double(d[[v]])) d[[v]] <- round(d[[v]], 6)
  d
}
fmt <- function(v) ifelse(is.na(v), "NA", sprintf("%.17g", v))

specs <- list(
  list(dataset = "seed_balanced",   predictors = "X",         cluster = "subject"),
  list(dataset = "unbalanced",      predictors = "x + z",     cluster = "cluster"),
  list(dataset = "few_clusters",    predictors = "x",         cluster = "cluster"),
  list(dataset = "between_cluster", predictors = "x + w",     cluster = "cluster"),
  list(dataset = "between_cluster", predictors = "w",         cluster = "cluster"),
  list(dataset = "crossed_within",  predictors = "condition", cluster = "subject"),
  list(dataset = "crossed_between", predictors = "condition", cluster = "subject"),
  list(dataset = "crossed_between", predictors = "condition", cluster = "item")
)

rows <- list()
for (sp in specs) {
  d <- read_data(sp$dataset)
  d$.cluster <- factor(d[[sp$cluster]])
  fit <- lm(as.formula(paste("y ~ 0 + .cluster +", sp$predictors)), data = d)
  G <- nlevels(d$.cluster)
  slopes <- trimws(strsplit(sp$predictors, "+", fixed = TRUE)[[1]])
  b <- coef(fit)[slopes]
  V <- vcovCL(fit, cluster = ~.cluster, type = "HC1")
  se <- sqrt(diag(V)[match(slopes, rownames(V))])
  p <- 2 * pt(abs(b / se), G - 1, lower.tail = FALSE)
  rows[[length(rows) + 1]] <- data.frame(
    dataset = sp$dataset, formula = paste("y ~", sp$predictors), cluster = sp$cluster,
    term = slopes, estimate = unname(b), std_error = unname(se), df = G - 1,
    p_value = unname(p), n = nobs(fit), rank = fit$rank, stringsAsFactors = FALSE)
}
out <- do.call(rbind, rows)
for (j in seq_along(out)) if (is.numeric(out[[j]])) out[[j]] <- fmt(out[[j]])
write.table(out, file.path(out_dir, "fe_cr1.csv"), sep = ",", row.names = FALSE,
            quote = which(names(out) %in% c("dataset", "formula", "cluster", "term")))
cat(sprintf("wrote fe_cr1.csv, %d rows\n", nrow(out)))
writeLines(c(R.version.string, paste("sandwich", packageVersion("sandwich"))),
           file.path(out_dir, "r_versions.txt"))
