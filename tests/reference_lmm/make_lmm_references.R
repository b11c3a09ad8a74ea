#!/usr/bin/env Rscript
## Extra lme4 / lmerTest fixtures for the mixed-model engine (estimators/lmm), covering what
## tests/reference/lmm.csv does not: unbalanced designs with missing cells, a 30 x 20 crossed
## design, nesting with (1 | a/b) and (1 | a:b), (0 + x | g), (x || g), a factor fixed effect,
## Satterthwaite df of ML fits, likelihood-ratio tests, AIC/BIC and the random-effects PCA.
##
## Run from the repository root:
##   Rscript tests/reference_lmm/make_lmm_references.R
##
## Output: tests/reference_lmm/data/*.csv (simulated here, seeded) and
##         tests/reference_lmm/lmm_extra.csv. Conventions are those of tests/reference/README.md
##         (values rounded to 6 decimals before writing and after reading, %.17g output, TRUE /
##         FALSE, patsy term names). Columns of lmm_extra.csv beyond lmm.csv's:
##   aic, bic      AIC(fit), BIC(fit) (REML criterion for REML fits, as lme4 computes them)
##   df_satterthwaite, p_satterthwaite  lmerTest, for REML and ML fits alike
##   lrt_chisq, lrt_p   ML fits with and without the term's column (anova(m0, m1)); NA for
##                 factor terms (a term with several columns)
##   pca           lme4::rePCA: per grouping factor, proportions of variance (sdev^2 / sum)
##                 as "group:p1,p2;group2:p1"
## The optimiser settings are those of tests/reference/make_references.R.

RNGkind("Mersenne-Twister", "Inversion", "Rejection")
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
})

script_dir <- function() {
  args <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", args[grep("^--file=", args)])
  if (length(f) == 1) dirname(normalizePath(f)) else normalizePath("tests/reference_lmm")
}
ref_dir <- script_dir()
own_data <- file.path(ref_dir, "data")
shared_data <- file.path(dirname(ref_dir), "reference", "data")
dir.create(own_data, showWarnings = FALSE, recursive = TRUE)
r6 <- function(v) round(v, 6)

## ---------------------------------------------------------------------------
## Datasets
## ---------------------------------------------------------------------------
write_data <- function(d, name) {
  write.csv(d, file.path(own_data, paste0(name, ".csv")), row.names = FALSE, quote = FALSE)
}

## 30 subjects x 20 items, counterbalanced (odd subjects: odd items at -0.5; even subjects the
## reverse), correlated subject and item intercepts and slopes, 10% of rows deleted at random.
set.seed(501)
ns <- 30; ni <- 20
d <- expand.grid(item = 1:ni, subject = 1:ns)[, c("subject", "item")]
d$condition <- ifelse((d$subject + d$item) %% 2 == 0, -0.5, 0.5)
S <- matrix(c(0.36, 0.036, 0.036, 0.09), 2) ; I <- matrix(c(0.25, -0.0375, -0.0375, 0.0625), 2)
us <- matrix(rnorm(ns * 2), ns) %*% chol(S); ui <- matrix(rnorm(ni * 2), ni) %*% chol(I)
d$y <- r6(0.4 * d$condition + us[d$subject, 1] + us[d$subject, 2] * d$condition +
            ui[d$item, 1] + ui[d$item, 2] * d$condition + rnorm(nrow(d)))
d <- d[sort(sample(nrow(d), round(0.9 * nrow(d)))), c("y", "condition", "subject", "item")]
write_data(d, "crossed_30x20_missing")

## 8 schools x 5 classes x 3..9 pupils, random school and class-within-school intercepts.
set.seed(502)
rows <- list()
for (s in 1:8) for (k in 1:5) {
  m <- sample(3:9, 1)
  rows[[length(rows) + 1]] <- data.frame(school = s, class = k, x = r6(rnorm(m)))
}
d <- do.call(rbind, rows)
school_effect <- rnorm(8, sd = 0.8); class_effect <- rnorm(40, sd = 0.5)
d$y <- r6(1 + 0.5 * d$x + school_effect[d$school] + class_effect[(d$school - 1) * 5 + d$class] + rnorm(nrow(d)))
write_data(d[, c("y", "x", "school", "class")], "nested")

## 20 subjects x 3 conditions (a, b, c) x 4 trials, random subject intercepts.
set.seed(503)
d <- expand.grid(trial = 1:4, condition = c("a", "b", "c"), subject = 1:20)
d$y <- r6(c(a = 0, b = 0.3, c = 0.8)[as.character(d$condition)] + rnorm(20, sd = 0.7)[d$subject] + rnorm(nrow(d)))
write_data(d[, c("y", "condition", "subject")], "factor3")

## ---------------------------------------------------------------------------
## Fits
## ---------------------------------------------------------------------------
read_data <- function(name) {
  path <- file.path(own_data, paste0(name, ".csv"))
  if (!file.exists(path)) path <- file.path(shared_data, paste0(name, ".csv"))
  d <- read.csv(path)
  for (v in names(d)) if (is.double(d[[v]])) d[[v]] <- round(d[[v]], 6)
  d
}
patsy_name <- function(x) {
  x <- gsub("(Intercept)", "Intercept", x, fixed = TRUE)
  gsub("^condition([bc])$", "condition[T.\\1]", x)
}
fmt_num <- function(v) ifelse(is.na(v), "NA", sprintf("%.17g", v))
lmm_control <- lmerControl(
  optimizer = "nloptwrap",
  optCtrl = list(xtol_rel = 1e-12, ftol_rel = 1e-14, ftol_abs = 1e-14,
                 xtol_abs = 1e-12, maxeval = 100000))

varcomp_string <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  n1 <- ifelse(is.na(vc$var1), "", patsy_name(vc$var1))
  n2 <- ifelse(is.na(vc$var2), "", patsy_name(vc$var2))
  paste(sprintf("%s:%s:%s:%s", vc$grp, n1, n2, sprintf("%.17g", vc$sdcor)), collapse = ";")
}
pca_string <- function(fit) {
  p <- rePCA(fit)
  paste(vapply(names(p), function(g) {
    v <- p[[g]]$sdev^2
    sprintf("%s:%s", g, paste(sprintf("%.17g", v / sum(v)), collapse = ","))
  }, ""), collapse = ";")
}

specs <- list(
  list("unbalanced", c("y ~ x + z + (1 + x | cluster)", "y ~ x + z + (1 | cluster) + (0 + x | cluster)")),
  list("few_clusters", c("y ~ x + (1 + x | cluster)", "y ~ x + (x || cluster)")),
  list("between_cluster", c("y ~ x + w + (1 | cluster)")),
  list("crossed_30x20_missing", c(
    "y ~ condition + (1 + condition | subject) + (1 + condition | item)",
    "y ~ condition + (1 + condition || subject) + (1 + condition || item)",
    "y ~ condition + (1 | subject) + (1 | item)")),
  list("nested", c("y ~ x + (1 | school/class)", "y ~ x + (1 | school) + (1 | school:class)")),
  list("factor3", c("y ~ condition + (1 | subject)")))

rows <- list()
for (sp in specs) {
  d <- read_data(sp[[1]])
  for (fo in sp[[2]]) {
    for (reml in c(TRUE, FALSE)) {
      fit <- lmerTest::lmer(as.formula(fo), data = d, REML = reml, control = lmm_control)
      sm <- summary(fit)$coefficients
      terms <- rownames(sm)
      X <- getME(fit, "X")
      lrt <- matrix(NA_real_, length(terms), 2)
      ml <- if (reml) update(fit, REML = FALSE) else fit
      for (j in seq_along(terms)) {
        if (grepl("^condition[bc]$", terms[j])) next
        Xj <- X[, -j, drop = FALSE]
        rhs <- paste(c("0 + Xj", sapply(findbars(as.formula(fo)), function(b) paste0("(", deparse(b), ")"))), collapse = " + ")
        m0 <- lme4::lmer(as.formula(paste("y ~", rhs)), data = d, REML = FALSE, control = lmm_control)
        a <- anova(m0, ml, refit = FALSE)
        lrt[j, ] <- c(a$Chisq[2], a$`Pr(>Chisq)`[2])
      }
      th <- getME(fit, "theta")
      crit <- if (reml) REMLcrit(fit) else deviance(fit)
      rows[[length(rows) + 1]] <- data.frame(
        dataset = sp[[1]], formula = fo, reml = reml, term = patsy_name(terms),
        estimate = sm[, "Estimate"], std_error = sm[, "Std. Error"],
        df_satterthwaite = sm[, "df"], p_satterthwaite = sm[, "Pr(>|t|)"],
        criterion = crit, logLik = as.numeric(logLik(fit)), aic = AIC(fit), bic = BIC(fit),
        sigma = sigma(fit), is_singular = isSingular(fit),
        theta = paste(sprintf("%.17g", th), collapse = ";"),
        theta_names = paste(patsy_name(names(th)), collapse = ";"),
        varcomp = varcomp_string(fit), lrt_chisq = lrt[, 1], lrt_p = lrt[, 2],
        pca = pca_string(fit), stringsAsFactors = FALSE)
    }
  }
}
out <- do.call(rbind, rows)
quoted <- which(vapply(out, is.character, TRUE))
for (j in seq_along(out)) {
  if (is.numeric(out[[j]])) out[[j]] <- fmt_num(out[[j]])
  else if (is.logical(out[[j]])) out[[j]] <- ifelse(out[[j]], "TRUE", "FALSE")
}
write.table(out, file.path(ref_dir, "lmm_extra.csv"), sep = ",", row.names = FALSE,
            quote = quoted, na = "NA")
cat(sprintf("wrote lmm_extra.csv %d rows\n", nrow(out)))
writeLines(c(R.version.string, sprintf("lme4 %s", packageVersion("lme4")),
             sprintf("lmerTest %s", packageVersion("lmerTest")),
             sprintf("Matrix %s", packageVersion("Matrix")), sprintf("nloptr %s", packageVersion("nloptr"))),
           file.path(ref_dir, "r_versions.txt"))
