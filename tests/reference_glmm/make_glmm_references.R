# References for the GLMM engine (estimators/glmm/): lme4's glmer refitted with a tight bobyqa
# tolerance on lme4's cbpp, VerbAgg and grouseticks and on simulated crossed binary data.
# Run from this folder: Rscript make_glmm_references.R  (writes data/*.csv, glmer_*.json)
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
dir.create("data", showWarnings = FALSE)
# tolPwrss: lme4's PIRLS stops at a relative change of 1e-7 in the penalised deviance by default,
# which leaves about 5e-4 of error in the Laplace deviance of cbpp; at 1e-13 its deviance is exact.
tight <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-13, optCtrl = list(rhobeg = 0.2, rhoend = 1e-10, maxfun = 1e5))

summarise_fit <- function(fit, name) {
  vc <- as.data.frame(VarCorr(fit))
  # The SEs again from a Richardson-extrapolated Hessian of glmer's own deviance function
  # (numDeriv), beside vcov()'s central differences at step 1e-4.
  devfun <- update(fit, devFunOnly = TRUE)
  ntheta <- length(getME(fit, "theta"))
  H <- numDeriv::hessian(devfun, c(getME(fit, "theta"), fixef(fit)))
  se_richardson <- sqrt(diag(2 * solve(H))[-seq_len(ntheta)])
  out <- list(
    name = name,
    formula = paste(deparse(formula(fit), width.cutoff = 500), collapse = ""),
    family = family(fit)$family, link = family(fit)$link, nAGQ = fit@devcomp$dims[["nAGQ"]],
    minus_two_loglik = -2 * as.numeric(logLik(fit)),
    objective = unname(fit@devcomp$cmp[["dev"]]),
    deviance = deviance(fit),
    fixef_names = names(fixef(fit)), fixef = unname(fixef(fit)),
    se = unname(sqrt(diag(as.matrix(vcov(fit))))),
    se_richardson = unname(se_richardson),
    vcov = unname(as.matrix(vcov(fit))),
    theta = unname(getME(fit, "theta")), theta_names = names(getME(fit, "theta")),
    varcorr = data.frame(grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov, sdcor = vc$sdcor),
    singular = isSingular(fit),
    n = nobs(fit),
    lme4 = as.character(packageVersion("lme4")), R = R.version.string)
  write_json(out, paste0("glmer_", name, ".json"), digits = NA, auto_unbox = TRUE, pretty = TRUE)
}

# cbpp: binomial with trials, one scalar random intercept (Laplace and nAGQ = 25)
data(cbpp)
write.csv(cbpp, "data/cbpp.csv", row.names = FALSE)
f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
summarise_fit(glmer(f, cbpp, binomial, control = tight), "cbpp")
summarise_fit(glmer(f, cbpp, binomial, control = tight, nAGQ = 25), "cbpp_agq25")
summarise_fit(glmer(f, cbpp, binomial(link = "probit"), control = tight), "cbpp_probit")

# VerbAgg: binary, crossed (1 | id) + (1 | item)
data(VerbAgg)
va <- data.frame(y = as.integer(VerbAgg$r2 == "Y"), Anger = VerbAgg$Anger, Gender = VerbAgg$Gender,
                 btype = VerbAgg$btype, situ = VerbAgg$situ, id = VerbAgg$id, item = VerbAgg$item)
write.csv(va, "data/verbagg.csv", row.names = FALSE)
summarise_fit(glmer(y ~ Anger + Gender + btype + situ + (1 | id) + (1 | item), va, binomial, control = tight),
              "verbagg")

# grouseticks: Poisson, three random intercepts (INDEX is one level per observation)
data(grouseticks)
gt <- grouseticks
gt$HEIGHT <- as.numeric(scale(gt$HEIGHT))
gt <- data.frame(TICKS = gt$TICKS, YEAR = paste0("y", gt$YEAR), HEIGHT = gt$HEIGHT, BROOD = gt$BROOD,
                 INDEX = gt$INDEX, LOCATION = gt$LOCATION)
write.csv(gt, "data/grouseticks.csv", row.names = FALSE)
summarise_fit(glmer(TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION), gt, poisson,
                    control = tight), "grouseticks")

# Simulated crossed binary data with a by-subject random slope: 30 subjects x 16 items
set.seed(15)
ns <- 30; ni <- 16
d <- expand.grid(subject = sprintf("s%02d", 1:ns), item = sprintf("i%02d", 1:ni), stringsAsFactors = FALSE)
d$condition <- ifelse((match(d$item, sort(unique(d$item))) + match(d$subject, sort(unique(d$subject)))) %% 2 == 0, -0.5, 0.5)
bs <- MASS::mvrnorm(ns, c(0, 0), matrix(c(0.8, 0.2, 0.2, 0.5), 2))
bi <- rnorm(ni, 0, 0.6)
si <- match(d$subject, sort(unique(d$subject))); ii <- match(d$item, sort(unique(d$item)))
eta <- 0.3 + 0.6 * d$condition + bs[si, 1] + bs[si, 2] * d$condition + bi[ii]
d$y <- rbinom(nrow(d), 1, plogis(eta))
write.csv(d, "data/crossed_binary.csv", row.names = FALSE)
full <- glmer(y ~ condition + (1 + condition | subject) + (1 | item), d, binomial, control = tight)
summarise_fit(full, "crossed_slope")
# Likelihood-ratio tests of each fixed-effect column (the model refitted without it)
reduced_condition <- glmer(y ~ 1 + (1 + condition | subject) + (1 | item), d, binomial, control = tight)
reduced_intercept <- glmer(y ~ 0 + condition + (1 + condition | subject) + (1 | item), d, binomial, control = tight)
lrt <- sapply(list(Intercept = reduced_intercept, condition = reduced_condition),
              function(r) anova(r, full)[["Pr(>Chisq)"]][2])
write_json(as.list(lrt), "glmer_crossed_slope_lrt.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
writeLines(c(R.version.string, paste("lme4", packageVersion("lme4")), paste("Matrix", packageVersion("Matrix"))),
           "r_versions.txt")
