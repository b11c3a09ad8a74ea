#!/usr/bin/env Rscript
## Kenward-Roger and F-test fixtures for the mixed-model engine (estimators/lmm/kenward_roger.py,
## estimators/lmm/ftest.py): pbkrtest's adjusted covariance and df per coefficient, lmerTest's
## type III anova tables with Satterthwaite and Kenward-Roger df, user contrasts (t and F), and
## likelihood-ratio tests of whole terms (all their columns dropped).
##
## Run from the repository root:
##   Rscript tests/reference_lmm/make_kr_references.R
##
## Data: the committed CSVs of tests/reference/data and tests/reference_lmm/data, and four
## data sets of R packages written here to tests/reference_lmm/data (sleepstudy, Penicillin and
## cake from lme4, Machines from nlme; cake's temperature as a factor with levels t175..t225).
## Output (tests/reference_lmm/): kr_coefficients.csv, kr_anova.csv, kr_contrasts.csv,
## kr_lrt.csv, kr_r_versions.txt. Numbers are written with %.17g; term names are patsy's
## (Intercept, condition[T.b], recipe[T.B]:temp). Columns:
##   kr_coefficients: estimate, std_error (lme4), se_kr = sqrt(diag(vcovAdj)), df_kr
##       (Lb_ddf with L = e_j), p_kr (lmerTest summary(ddf = "Kenward-Roger")), df_satterthwaite,
##       vcov_adj (the whole matrix, row-major, ";"-separated, on the first row of a model)
##   kr_anova: lmerTest anova(type = 3) per ddf ("satterthwaite", "kenward_roger"): num_df,
##       den_df, F, p_value, and the hypothesis matrix L (rows ";", entries ",")
##   kr_contrasts: per contrast L (same encoding) and ddf: lmerTest contest1D (one row: estimate,
##       std_error, df, t, p_value) or contestMD (several rows: num_df, den_df, F, p_value)
##   kr_lrt: ML fits with and without all columns of a term (anova(m0, m1)): chisq, df, p_value
## The optimiser settings are those of tests/reference/make_references.R.

RNGkind("Mersenne-Twister", "Inversion", "Rejection")
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
})

script_dir <- function() {
  args <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", args[grep("^--file=", args)])
  if (length(f) == 1) dirname(normalizePath(f)) else normalizePath("tests/reference_lmm")
}
ref_dir <- script_dir()
own_data <- file.path(ref_dir, "data")
shared_data <- file.path(dirname(ref_dir), "reference", "data")
fmt <- function(v) ifelse(is.na(v), "NA", sprintf("%.17g", v))
lmm_control <- lmerControl(
  optimizer = "nloptwrap",
  optCtrl = list(xtol_rel = 1e-12, ftol_rel = 1e-14, ftol_abs = 1e-14,
                 xtol_abs = 1e-12, maxeval = 100000))

## ---------------------------------------------------------------------------
## Data sets of R packages
## ---------------------------------------------------------------------------
write_data <- function(d, name) {
  write.csv(d, file.path(own_data, paste0(name, ".csv")), row.names = FALSE, quote = FALSE)
}
write_data(lme4::sleepstudy[, c("Reaction", "Days", "Subject")], "sleepstudy")
data(Machines, package = "nlme")
machines <- data.frame(score = Machines$score, Machine = as.character(Machines$Machine),
                       Worker = as.character(Machines$Worker))
write_data(machines, "machines")
write_data(lme4::Penicillin[, c("diameter", "plate", "sample")], "penicillin")
cake <- lme4::cake
write_data(data.frame(angle = cake$angle, recipe = as.character(cake$recipe),
                      temperature = paste0("t", cake$temp), temp = cake$temp,
                      replicate = as.character(cake$replicate)), "cake")

read_data <- function(name) {
  path <- file.path(own_data, paste0(name, ".csv"))
  if (!file.exists(path)) path <- file.path(shared_data, paste0(name, ".csv"))
  d <- read.csv(path, stringsAsFactors = TRUE)
  for (v in names(d)) if (is.double(d[[v]])) d[[v]] <- round(d[[v]], 6)
  d
}

## patsy's names for R's coefficient names: (Intercept) -> Intercept, recipeB -> recipe[T.B].
patsy_names <- function(names, d) {
  factors <- names(d)[vapply(d, is.factor, TRUE)]
  part <- function(x) {
    if (x == "(Intercept)") return("Intercept")
    for (f in factors) {
      if (startsWith(x, f) && substring(x, nchar(f) + 1) %in% levels(d[[f]]))
        return(sprintf("%s[T.%s]", f, substring(x, nchar(f) + 1)))
    }
    x
  }
  vapply(names, function(n) paste(vapply(strsplit(n, ":", fixed = TRUE)[[1]], part, ""), collapse = ":"), "")
}
matrix_string <- function(L) paste(apply(L, 1, function(r) paste(fmt(r), collapse = ",")), collapse = ";")

## ---------------------------------------------------------------------------
## Models: dataset, formula, user contrasts (rows over the coefficients)
## ---------------------------------------------------------------------------
specs <- list(
  list("factor3", "y ~ condition + (1 | subject)",
       list(b_vs_c = rbind(c(0, 1, -1)), any = rbind(c(0, 1, 0), c(0, 0, 1)),
            mixed = rbind(c(1, 0.5, 0.5), c(0, 1, -1)))),
  list("crossed_30x20_missing", "y ~ condition + (1 + condition | subject) + (1 + condition | item)",
       list(both = rbind(c(1, 0), c(0, 1)))),
  list("crossed_30x20_missing", "y ~ condition + (1 | subject) + (1 | item)", list()),
  list("crossed_within", "y ~ condition + (1 + condition | subject) + (1 + condition | item)", list()),
  list("crossed_between", "y ~ condition + (1 + condition || subject) + (1 | item)", list()),
  list("unbalanced", "y ~ x + z + (1 | cluster) + (0 + x | cluster)",
       list(x_plus_z = rbind(c(0, 1, 1)), x_and_z = rbind(c(0, 1, 0), c(0, 0, 1)))),
  list("few_clusters", "y ~ x + (1 + x | cluster)", list()),
  list("between_cluster", "y ~ x + w + (1 | cluster)", list()),
  list("nested", "y ~ x + (1 | school/class)", list()),
  list("sleepstudy", "Reaction ~ Days + (Days | Subject)", list()),
  list("machines", "score ~ Machine + (1 | Worker) + (1 | Worker:Machine)",
       list(b_vs_c = rbind(c(0, 1, -1)), any = rbind(c(0, 1, 0), c(0, 0, 1)))),
  list("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", list()),
  list("cake", "angle ~ recipe * temp + (1 | recipe:replicate)",
       list(slopes_equal = rbind(c(0, 0, 0, 0, 1, 0), c(0, 0, 0, 0, 0, 1)))),
  list("cake", "angle ~ recipe + temperature + (1 | recipe:replicate)", list()),
  list("cake", "angle ~ recipe * temperature + (1 | recipe:replicate)", list()))

coefficient_rows <- list(); anova_rows <- list(); contrast_rows <- list(); lrt_rows <- list()
for (sp in specs) {
  name <- sp[[1]]; fo <- sp[[2]]; contrasts <- sp[[3]]
  d <- read_data(name)
  fit <- lmerTest::lmer(as.formula(fo), data = d, REML = TRUE, control = lmm_control)
  terms <- patsy_names(names(fixef(fit)), d)
  p <- length(terms)
  V0 <- vcov(fit)
  Vadj <- vcovAdj(fit)
  df_kr <- vapply(seq_len(p), function(j) Lb_ddf(diag(p)[j, , drop = FALSE], V0, Vadj), 0)
  kr <- summary(fit, ddf = "Kenward-Roger")$coefficients
  sat <- summary(fit, ddf = "Satterthwaite")$coefficients
  stopifnot(isTRUE(all.equal(unname(kr[, "df"]), df_kr)))
  coefficient_rows[[length(coefficient_rows) + 1]] <- data.frame(
    dataset = name, formula = fo, term = terms, estimate = fmt(fixef(fit)),
    std_error = fmt(sqrt(diag(as.matrix(V0)))), se_kr = fmt(sqrt(diag(as.matrix(Vadj)))),
    df_kr = fmt(df_kr), p_kr = fmt(kr[, "Pr(>|t|)"]), df_satterthwaite = fmt(sat[, "df"]),
    criterion = fmt(REMLcrit(fit)), is_singular = ifelse(isSingular(fit), "TRUE", "FALSE"),
    vcov_adj = c(matrix_string(as.matrix(Vadj)), rep("", p - 1)), stringsAsFactors = FALSE)
  for (ddf in c("Satterthwaite", "Kenward-Roger")) {
    if (p == 1) break
    a <- anova(fit, type = 3, ddf = ddf)
    hyp <- attr(a, "hypotheses")
    anova_rows[[length(anova_rows) + 1]] <- data.frame(
      dataset = name, formula = fo, ddf = c("Satterthwaite" = "satterthwaite", "Kenward-Roger" = "kenward_roger")[[ddf]],
      term = rownames(a), num_df = fmt(a$NumDF), den_df = fmt(a$DenDF), F = fmt(a$`F value`),
      p_value = fmt(a$`Pr(>F)`),
      L = vapply(rownames(a), function(t) matrix_string(rbind(hyp[[t]])), ""), stringsAsFactors = FALSE)
  }
  for (cname in names(contrasts)) {
    L <- contrasts[[cname]]
    for (ddf in c("Satterthwaite", "Kenward-Roger")) {
      tag <- c("Satterthwaite" = "satterthwaite", "Kenward-Roger" = "kenward_roger")[[ddf]]
      if (nrow(L) == 1) {
        r <- contest1D(fit, drop(L), ddf = ddf)
        row <- data.frame(estimate = fmt(r$Estimate), std_error = fmt(r$`Std. Error`), df = fmt(r$df),
                          t = fmt(r$`t value`), num_df = "NA", den_df = "NA", F = "NA", p_value = fmt(r$`Pr(>|t|)`))
      } else {
        r <- contestMD(fit, L, ddf = ddf)
        row <- data.frame(estimate = "NA", std_error = "NA", df = "NA", t = "NA", num_df = fmt(r$NumDF),
                          den_df = fmt(r$DenDF), F = fmt(r$`F value`), p_value = fmt(r$`Pr(>F)`))
      }
      contrast_rows[[length(contrast_rows) + 1]] <- cbind(
        data.frame(dataset = name, formula = fo, contrast = cname, L = matrix_string(L), ddf = tag,
                   stringsAsFactors = FALSE), row)
    }
  }
  ## Likelihood-ratio tests of each term: ML fits with and without all its columns.
  X <- getME(fit, "X")
  assign <- attr(X, "assign")
  labels <- attr(terms(fit, fixed.only = TRUE), "term.labels")
  ml <- update(fit, REML = FALSE)
  bars <- sapply(findbars(as.formula(fo)), function(b) paste0("(", deparse(b), ")"))
  for (a in setdiff(unique(assign), 0)) {
    Xj <- X[, assign != a, drop = FALSE]
    rhs <- paste(c("0 + Xj", bars), collapse = " + ")
    m0 <- lme4::lmer(as.formula(paste(all.vars(as.formula(fo))[1], "~", rhs)), data = d, REML = FALSE, control = lmm_control)
    t <- anova(m0, ml, refit = FALSE)
    lrt_rows[[length(lrt_rows) + 1]] <- data.frame(
      dataset = name, formula = fo, term = labels[a], chisq = fmt(t$Chisq[2]), df = fmt(t$Df[2]),
      p_value = fmt(t$`Pr(>Chisq)`[2]), stringsAsFactors = FALSE)
  }
}

write_rows <- function(rows, file) {
  out <- do.call(rbind, rows)
  quoted <- which(names(out) %in% c("dataset", "formula", "term", "ddf", "contrast", "L", "vcov_adj"))
  write.table(out, file.path(ref_dir, file), sep = ",", row.names = FALSE, quote = quoted, na = "NA")
  cat(sprintf("wrote %s %d rows\n", file, nrow(out)))
}
write_rows(coefficient_rows, "kr_coefficients.csv")
write_rows(anova_rows, "kr_anova.csv")
write_rows(contrast_rows, "kr_contrasts.csv")
write_rows(lrt_rows, "kr_lrt.csv")
writeLines(c(R.version.string, sprintf("lme4 %s", packageVersion("lme4")),
             sprintf("lmerTest %s", packageVersion("lmerTest")),
             sprintf("pbkrtest %s", packageVersion("pbkrtest")),
             sprintf("nlme %s", packageVersion("nlme")),
             sprintf("Matrix %s", packageVersion("Matrix")), sprintf("nloptr %s", packageVersion("nloptr"))),
           file.path(ref_dir, "kr_r_versions.txt"))
