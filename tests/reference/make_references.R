#!/usr/bin/env Rscript
## Compute R reference results that the Python test-suite compares against.
##
## Run from the repository root, after make_datasets.R:
##   Rscript tests/reference/make_references.R
##
## Inputs : tests/reference/data/*.csv
## Outputs: tests/reference/ols_family.csv, gee.csv, anova_f1f2.csv, lmm.csv,
##          r_versions.txt
##
## General conventions for every output CSV
##   * Numbers are written with sprintf("%.17g") (round-trip exact doubles).
##   * Missing values are written as NA (pandas reads them as NaN by default).
##   * Logical columns are TRUE / FALSE.
##   * Character columns are double-quoted.
##   * Term names follow patsy/statsmodels: "(Intercept)" becomes "Intercept";
##     other terms keep their column names (X, x, z, w, condition).
##   * Input values: R's text parser is not always correctly rounded, so after
##     read.csv every non-integer numeric column is passed through round(v, 6)
##     (all data were rounded to 6 decimals before writing).  This makes the R
##     inputs bit-identical to what Python's float()/pandas parse.
##
## lmm.csv format
##   One row per fixed-effect term per fit.  Fit-level columns repeat on every
##   row of the fit:
##     criterion  REML criterion (-2 * REML log-likelihood, lme4::REMLcrit) for
##                REML fits; deviance (-2 * ML log-likelihood) for ML fits.
##     logLik     logLik(fit): the REML log-likelihood for REML fits, the ML
##                log-likelihood for ML fits (so criterion == -2 * logLik).
##     sigma      residual standard deviation.
##     is_singular  lme4::isSingular(fit) (default tol = 1e-4).
##     theta      getME(fit, "theta"): relative Cholesky factor entries
##                (column-wise lower triangle per random-effect term, in lme4's
##                order), joined with ";".
##     theta_names  matching lme4 names, joined with ";" ("(Intercept)" ->
##                "Intercept"), e.g. "subject.Intercept;subject.X.Intercept;subject.X".
##     varcomp    VarCorr(fit) as entries separated by ";".  Every entry has
##                exactly four ":"-separated fields  group:name1:name2:value
##                  - name2 empty  -> value is the standard deviation of name1
##                  - name2 given  -> value is the correlation of name1, name2
##                  - residual     -> "Residual:::<sigma>"
##                Order is as.data.frame(VarCorr(fit)) ("cov.last"): all SDs
##                group by group, then correlations, residual last.
##                lme4's double-bar syntax (1+condition||subject) splits into
##                separate groups named "subject" (Intercept) and "subject.1"
##                (condition); those names are kept verbatim.
##   df_satterthwaite / p_satterthwaite come from lmerTest (Satterthwaite) for
##   REML fits only; NA for ML fits.
##   All fits use lme4's default optimizer (nloptwrap / BOBYQA) with tightened
##   tolerances (see lmm_control below): the criterion is at its minimum to
##   ~1e-8, but theta / variance components are only determined to ~1e-5
##   relative (flat likelihood surface; Nelder-Mead and default settings differ
##   from these values at that level), and Satterthwaite df use numerical
##   derivatives (e.g. 454.9999997 for an exact 455).

suppressPackageStartupMessages({
  library(sandwich)
  library(lmtest)
  library(clubSandwich)
  library(geepack)
  library(afex)
  library(lme4)
  library(lmerTest)
})

script_dir <- function() {
  args <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", args[grep("^--file=", args)])
  if (length(f) == 1) dirname(normalizePath(f)) else normalizePath("tests/reference")
}
ref_dir <- script_dir()
data_dir <- file.path(ref_dir, "data")

read_data <- function(name) {
  d <- read.csv(file.path(data_dir, paste0(name, ".csv")))
  for (v in names(d)) {
    if (is.double(d[[v]])) d[[v]] <- round(d[[v]], 6)
  }
  d
}

patsy_name <- function(x) gsub("(Intercept)", "Intercept", x, fixed = TRUE)

fmt_num <- function(v) ifelse(is.na(v), "NA", sprintf("%.17g", v))

write_ref <- function(df, name) {
  out <- df
  quote_cols <- integer(0)
  for (j in seq_along(out)) {
    v <- out[[j]]
    if (is.numeric(v)) {
      out[[j]] <- fmt_num(v)
    } else if (is.logical(v)) {
      out[[j]] <- ifelse(is.na(v), "NA", ifelse(v, "TRUE", "FALSE"))
    } else {
      out[[j]] <- as.character(v)
      quote_cols <- c(quote_cols, j)
    }
  }
  path <- file.path(ref_dir, name)
  write.table(out, path, sep = ",", row.names = FALSE, col.names = TRUE,
              quote = if (length(quote_cols)) quote_cols else FALSE, na = "NA")
  cat(sprintf("wrote %-16s %4d rows\n", name, nrow(df)))
}

check_equal <- function(a, b, what, tol = 1e-10) {
  a <- unname(as.matrix(a)); b <- unname(as.matrix(b))
  ok <- isTRUE(all.equal(a, b, tolerance = tol))
  if (!ok) stop("cross-check failed: ", what, "\n", paste(capture.output(print(a - b)), collapse = "\n"))
  invisible(TRUE)
}

## ===========================================================================
## 1. OLS with iid / HC / cluster-robust covariance  -> ols_family.csv
## ===========================================================================
## Conventions (n observations, p coefficients, G clusters):
##   iid : summary(lm): sigma^2 (X'X)^-1 with sigma^2 = RSS/(n-p); df = n-p.
##   HC0-HC3 : sandwich::vcovHC(fit, type); df = n-p, p from t(n-p)
##             (identical to lmtest::coeftest(fit, vcov = V), cross-checked).
##   CR0 : sandwich::vcovCL(type = "HC0", cadjust = FALSE), no small-sample
##         factor; df = G-1.  Cross-checked equal to clubSandwich "CR0".
##   CR1 : sandwich::vcovCL(type = "HC1") = G/(G-1) * (n-1)/(n-p) * CR0
##         (statsmodels' default cluster correction); df = G-1.
##         Cross-checked equal to clubSandwich::vcovCR(type = "CR1S").
##   CR2 : clubSandwich::coef_test(vcov = "CR2", test = "Satterthwaite"):
##         Bell-McCaffrey bias-reduced linearisation with identity working
##         model; SE, Satterthwaite df and p as reported by clubSandwich.
##         (sandwich::vcovCL(type = "HC2", cadjust = FALSE) is smaller by
##         exactly (G-1)/G; cross-checked.)
##   CR3 : clubSandwich::vcovCR(type = "CR3"): (X'X)^-1 sum_g X_g'(I-H_gg)^-1
##         e_g e_g'(I-H_gg)^-1 X_g (X'X)^-1, i.e. WITHOUT the (G-1)/G
##         jackknife factor (cross-checked against a direct computation);
##         df = G-1, p from t(G-1).
##   estimate is always the OLS coefficient.
##   The 'cluster' column names the clustering variable of the dataset; it is
##   filled on every row but only used by the CR* rows.

ols_specs <- list(
  list(dataset = "seed_balanced",   formula = "y ~ X",     cluster = "subject"),
  list(dataset = "unbalanced",      formula = "y ~ x + z", cluster = "cluster"),
  list(dataset = "few_clusters",    formula = "y ~ x",     cluster = "cluster"),
  list(dataset = "between_cluster", formula = "y ~ x + w", cluster = "cluster"),
  list(dataset = "crossed_within",  formula = "y ~ condition", cluster = "subject"),
  list(dataset = "crossed_between", formula = "y ~ condition", cluster = "subject")
)

cr3_direct <- function(fit, cl) {
  X <- model.matrix(fit); e <- resid(fit)
  XtXi <- solve(crossprod(X))
  M <- matrix(0, ncol(X), ncol(X))
  for (g in unique(cl)) {
    i <- which(cl == g)
    Xg <- X[i, , drop = FALSE]
    Hgg <- Xg %*% XtXi %*% t(Xg)
    s <- t(Xg) %*% solve(diag(length(i)) - Hgg, e[i])
    M <- M + s %*% t(s)
  }
  XtXi %*% M %*% XtXi
}

ols_rows <- list()
for (sp in ols_specs) {
  d <- read_data(sp$dataset)
  fit <- lm(as.formula(sp$formula), data = d)
  cl <- d[[sp$cluster]]
  n <- nobs(fit); p <- length(coef(fit)); G <- length(unique(cl))
  b <- coef(fit); terms <- patsy_name(names(b))
  add <- function(vc, se, df, pv) {
    ols_rows[[length(ols_rows) + 1]] <<- data.frame(
      dataset = sp$dataset, formula = sp$formula, cluster = sp$cluster,
      vcov = vc, term = terms, estimate = unname(b), std_error = unname(se),
      df = unname(df), p_value = unname(pv), stringsAsFactors = FALSE)
  }
  t_p <- function(se, df) 2 * pt(abs(b / se), df, lower.tail = FALSE)

  ## iid
  sm <- summary(fit)$coefficients
  add("iid", sm[, "Std. Error"], rep(n - p, p), sm[, "Pr(>|t|)"])
  check_equal(sm[, "Pr(>|t|)"], t_p(sm[, "Std. Error"], n - p), "iid p")

  ## HC0..HC3
  for (ty in c("HC0", "HC1", "HC2", "HC3")) {
    V <- vcovHC(fit, type = ty)
    se <- sqrt(diag(V))
    ct <- coeftest(fit, vcov. = V)
    check_equal(ct[, "Pr(>|t|)"], t_p(se, n - p), paste(sp$dataset, ty, "coeftest p"))
    add(ty, se, rep(n - p, p), t_p(se, n - p))
  }

  ## CR0
  V0 <- vcovCL(fit, cluster = cl, type = "HC0", cadjust = FALSE)
  check_equal(V0, as.matrix(vcovCR(fit, cluster = cl, type = "CR0")),
              paste(sp$dataset, "CR0 sandwich vs clubSandwich"))
  se <- sqrt(diag(V0)); add("CR0", se, rep(G - 1, p), t_p(se, G - 1))

  ## CR1 (sandwich HC1 with cluster adjustment == clubSandwich CR1S)
  V1 <- vcovCL(fit, cluster = cl, type = "HC1")
  check_equal(V1, as.matrix(vcovCR(fit, cluster = cl, type = "CR1S")),
              paste(sp$dataset, "CR1 sandwich vs clubSandwich CR1S"))
  check_equal(V1, V0 * G / (G - 1) * (n - 1) / (n - p), paste(sp$dataset, "CR1 scaling"))
  se <- sqrt(diag(V1)); add("CR1", se, rep(G - 1, p), t_p(se, G - 1))

  ## CR2 with Satterthwaite df
  ct2 <- coef_test(fit, vcov = "CR2", cluster = cl, test = "Satterthwaite")
  check_equal(ct2$beta, b, "CR2 beta")
  check_equal(as.matrix(vcovCR(fit, cluster = cl, type = "CR2")),
              vcovCL(fit, cluster = cl, type = "HC2", cadjust = FALSE) * G / (G - 1),
              paste(sp$dataset, "CR2 clubSandwich vs sandwich"))
  add("CR2", ct2$SE, ct2$df_Satt, ct2$p_Satt)

  ## CR3
  V3 <- as.matrix(vcovCR(fit, cluster = cl, type = "CR3"))
  check_equal(V3, cr3_direct(fit, cl), paste(sp$dataset, "CR3 direct"))
  se <- sqrt(diag(V3)); add("CR3", se, rep(G - 1, p), t_p(se, G - 1))
}
write_ref(do.call(rbind, ols_rows), "ols_family.csv")

## ===========================================================================
## 2. GEE (geepack::geeglm, gaussian, identity link)  -> gee.csv
## ===========================================================================
## std_error : robust sandwich SE ("san.se", geepack's default std.err).
## p_value   : geepack's Wald chi-square test with 1 df, W = (estimate/SE)^2,
##             exactly as geepack reports it: 1 - pchisq(W, 1).  Because of the
##             subtraction, p-values below ~1e-15 are rounding noise (multiples
##             of 2^-52, possibly 0): compare them with an absolute tolerance.
## scale     : geepack's dispersion phi = sum(pearson residual^2) / n
##             (divisor n, NOT n - p; cross-checked below).
## alpha     : exchangeable working correlation, geepack's moment estimator
##             sum_g sum_{j<k} r_gj r_gk / (phi * sum_g n_g (n_g - 1) / 2)
##             with the same phi (no p correction; cross-checked); NA for
##             independence.
gee_specs <- list(
  list(dataset = "seed_balanced", formula = "y ~ X",     id = "subject"),
  list(dataset = "unbalanced",    formula = "y ~ x + z", id = "cluster"),
  list(dataset = "few_clusters",  formula = "y ~ x",     id = "cluster")
)
gee_rows <- list()
for (sp in gee_specs) {
  d <- read_data(sp$dataset)
  d <- d[order(d[[sp$id]]), ]
  d$.id <- d[[sp$id]]
  for (cs in c("independence", "exchangeable")) {
    fit <- geeglm(as.formula(sp$formula), id = .id, data = d,
                  family = gaussian, corstr = cs)
    sm <- summary(fit)$coefficients
    phi <- unname(fit$geese$gamma)
    r <- d$y - fitted(fit)
    check_equal(phi, sum(r^2) / nrow(d), paste(sp$dataset, cs, "gee scale"), 1e-8)
    alpha <- NA_real_
    if (cs == "exchangeable") {
      alpha <- unname(fit$geese$alpha)
      num <- 0; npair <- 0
      for (g in split(r, d$.id)) {
        num <- num + (sum(g)^2 - sum(g^2)) / 2
        npair <- npair + length(g) * (length(g) - 1) / 2
      }
      check_equal(alpha, num / npair / phi, paste(sp$dataset, "gee alpha"), 1e-8)
    }
    ## geepack computes 1 - pchisq(W, 1) (not the upper tail directly)
    check_equal(sm[, "Pr(>|W|)"],
                1 - pchisq((sm[, "Estimate"] / sm[, "Std.err"])^2, 1),
                "gee p")
    gee_rows[[length(gee_rows) + 1]] <- data.frame(
      dataset = sp$dataset, formula = sp$formula, corstr = cs,
      term = patsy_name(rownames(sm)), estimate = sm[, "Estimate"],
      std_error = sm[, "Std.err"], p_value = sm[, "Pr(>|W|)"],
      alpha = alpha, scale = phi, stringsAsFactors = FALSE)
  }
}
write_ref(do.call(rbind, gee_rows), "gee.csv")

## ===========================================================================
## 3. By-subject (F1) / by-item (F2) ANOVA and min F'  -> anova_f1f2.csv
## ===========================================================================
## F1 : afex::aov_ez(id = "subject", dv = "y", within = "condition",
##      fun_aggregate = mean) on subject x condition cell means.
## F2 : crossed_within  -> condition within items: aov_ez(id = "item", within = "condition")
##      crossed_between -> condition between items: aov_ez(id = "item", between = "condition")
##      on item x condition cell means.
## minF: min F' = F1*F2/(F1+F2), df1 = 1,
##      df2 = (F1+F2)^2 / (F1^2/n2 + F2^2/n1), n1/n2 = denominator df of F1/F2,
##      p from F(1, df2).
## estimate: mean of the +0.5 cell means minus mean of the -0.5 cell means
##      (cells of the respective analysis; minF repeats the F1 estimate; the
##      designs are balanced so all three coincide).
## Cross-check: afex F equals base aov with Error() strata:
##      aov(y ~ condition + Error(subject/condition)) on subject cell means,
##      aov(y ~ condition + Error(item/condition)) on item cell means (within),
##      aov(y ~ condition) on item means (between).
## Sphericity correction is irrelevant with 2 levels; "none" is requested.
anova_rows <- list()
afex_F <- function(a) {
  tab <- a$anova_table
  c(F = tab[1, "F"], df1 = tab[1, "num Df"], df2 = tab[1, "den Df"], p = tab[1, "Pr(>F)"])
}
aov_F <- function(fit_aov) {
  s <- summary(fit_aov)
  strata <- if (inherits(s, "summary.aovlist")) lapply(s, function(st) st[[1]]) else list(s[[1]])
  for (tab in strata) {
    rn <- trimws(rownames(tab))
    if ("condition" %in% rn) {
      return(c(F = tab[rn == "condition", "F value"],
               df2 = tab[rn == "Residuals", "Df"]))
    }
  }
  stop("condition not found in aov summary")
}
cell_diff <- function(cm) mean(cm$y[cm$condition == "0.5"]) - mean(cm$y[cm$condition == "-0.5"])
afex_opts <- list(correction = "none", es = "none")
for (ds in c("crossed_within", "crossed_between")) {
  d <- read_data(ds)
  d$condition <- factor(d$condition, levels = c(-0.5, 0.5))
  d$subject <- factor(d$subject); d$item <- factor(d$item)

  a1 <- suppressMessages(aov_ez(id = "subject", dv = "y", data = d, within = "condition",
                                fun_aggregate = mean, anova_table = afex_opts))
  f1 <- afex_F(a1)
  cm1 <- aggregate(y ~ subject + condition, data = d, FUN = mean)
  check_equal(f1[c("F", "df2")],
              aov_F(aov(y ~ condition + Error(subject / condition), data = cm1)),
              paste(ds, "F1 afex vs aov"), 1e-8)

  cm2 <- aggregate(y ~ item + condition, data = d, FUN = mean)
  if (ds == "crossed_within") {
    a2 <- suppressMessages(aov_ez(id = "item", dv = "y", data = d, within = "condition",
                                  fun_aggregate = mean, anova_table = afex_opts))
    ref2 <- aov_F(aov(y ~ condition + Error(item / condition), data = cm2))
  } else {
    a2 <- suppressMessages(aov_ez(id = "item", dv = "y", data = d, between = "condition",
                                  fun_aggregate = mean, anova_table = afex_opts))
    ref2 <- aov_F(aov(y ~ condition, data = cm2))
  }
  f2 <- afex_F(a2)
  check_equal(f2[c("F", "df2")], ref2, paste(ds, "F2 afex vs aov"), 1e-8)

  e1 <- cell_diff(cm1); e2 <- cell_diff(cm2)
  F1 <- unname(f1["F"]); F2 <- unname(f2["F"])
  n1 <- unname(f1["df2"]); n2 <- unname(f2["df2"])
  minF <- F1 * F2 / (F1 + F2)
  mdf <- (F1 + F2)^2 / (F1^2 / n2 + F2^2 / n1)
  anova_rows[[length(anova_rows) + 1]] <- data.frame(
    dataset = ds, test = c("F1", "F2", "minF"),
    F = c(F1, F2, minF), df1 = c(f1["df1"], f2["df1"], 1),
    df2 = c(n1, n2, mdf),
    p_value = c(f1["p"], f2["p"], pf(minF, 1, mdf, lower.tail = FALSE)),
    estimate = c(e1, e2, e1), stringsAsFactors = FALSE)
}
write_ref(do.call(rbind, anova_rows), "anova_f1f2.csv")

## ===========================================================================
## 4. Linear mixed models (lme4 / lmerTest)  -> lmm.csv
## ===========================================================================
lmm_control <- lmerControl(
  optimizer = "nloptwrap",
  optCtrl = list(xtol_rel = 1e-12, ftol_rel = 1e-14, ftol_abs = 1e-14,
                 xtol_abs = 1e-12, maxeval = 100000))

## Random-effects structures.  In crossed_between, condition is constant within
## item, so a by-item random slope is not identified (the item variance can only
## differ between the two item groups: 2 identified quantities for 3 item
## parameters; lme4 reports a degenerate Hessian / unidentifiable model and the
## item SD/correlation estimates are arbitrary).  The design-maximal structure
## there is (1 + condition | subject) + (1 | item), which is used instead.
within_formulas <- c(
  "y ~ condition + (1 + condition | subject) + (1 + condition | item)",
  "y ~ condition + (1 + condition || subject) + (1 + condition || item)",
  "y ~ condition + (1 | subject) + (1 | item)")
between_formulas <- c(
  "y ~ condition + (1 + condition | subject) + (1 | item)",
  "y ~ condition + (1 + condition || subject) + (1 | item)",
  "y ~ condition + (1 | subject) + (1 | item)")
lmm_specs <- list(
  list(dataset = "seed_balanced",
       formulas = c("y ~ X + (1 | subject)", "y ~ X + (1 + X | subject)")),
  list(dataset = "crossed_within", formulas = within_formulas),
  list(dataset = "crossed_between", formulas = between_formulas),
  list(dataset = "singular", formulas = "y ~ x + (1 + x | cluster)"))

varcomp_string <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  g <- vc$grp
  n1 <- ifelse(is.na(vc$var1), "", patsy_name(vc$var1))
  n2 <- ifelse(is.na(vc$var2), "", patsy_name(vc$var2))
  paste(sprintf("%s:%s:%s:%s", g, n1, n2, sprintf("%.17g", vc$sdcor)), collapse = ";")
}

lmm_rows <- list()
for (sp in lmm_specs) {
  d <- read_data(sp$dataset)
  for (fo in sp$formulas) {
    for (reml in c(TRUE, FALSE)) {
      fit <- lmerTest::lmer(as.formula(fo), data = d, REML = reml,
                            control = lmm_control)
      msgs <- fit@optinfo$conv$lme4$messages
      if (length(msgs)) cat(sprintf("  note [%s | %s | REML=%s]: %s\n",
                                    sp$dataset, fo, reml, paste(msgs, collapse = "; ")))
      sm <- summary(fit)$coefficients
      crit <- if (reml) REMLcrit(fit) else deviance(fit)
      ll <- as.numeric(logLik(fit))
      check_equal(crit, -2 * ll, "criterion vs logLik", 1e-10)
      if (reml) {
        dfs <- sm[, "df"]; ps <- sm[, "Pr(>|t|)"]
      } else {
        dfs <- rep(NA_real_, nrow(sm)); ps <- rep(NA_real_, nrow(sm))
      }
      th <- getME(fit, "theta")
      lmm_rows[[length(lmm_rows) + 1]] <- data.frame(
        dataset = sp$dataset, formula = fo, reml = reml,
        term = patsy_name(rownames(sm)), estimate = sm[, "Estimate"],
        std_error = sm[, "Std. Error"], df_satterthwaite = dfs,
        p_satterthwaite = ps, criterion = crit, logLik = ll,
        sigma = sigma(fit), is_singular = isSingular(fit),
        theta = paste(sprintf("%.17g", th), collapse = ";"),
        theta_names = paste(patsy_name(names(th)), collapse = ";"),
        varcomp = varcomp_string(fit), stringsAsFactors = FALSE)
    }
  }
}
write_ref(do.call(rbind, lmm_rows), "lmm.csv")

## ===========================================================================
## 5. Versions -> r_versions.txt
## ===========================================================================
pk <- c("lme4", "lmerTest", "sandwich", "lmtest", "clubSandwich", "geepack",
        "afex", "Matrix", "nloptr")
vers <- c(R.version.string,
          paste("platform:", R.version$platform),
          sprintf("%s %s", pk, sapply(pk, function(p) as.character(packageVersion(p)))),
          "", "sessionInfo():", capture.output(print(sessionInfo())))
writeLines(vers, file.path(ref_dir, "r_versions.txt"))
cat("wrote r_versions.txt\n")
