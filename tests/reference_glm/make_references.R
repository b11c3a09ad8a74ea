# Reference results for the GLM, GEE and proportion-ANOVA estimators on binary and count data.
# Simulates the datasets in data/ (seeded) and writes glm.csv, gee.csv and anova_proportions.csv;
# the two-column binomial response cbind(k, n - k) is fitted on lme4's cbpp (k of n cattle per
# herd and period, clusters = herds), the copy in tests/reference_glmm/data/cbpp.csv.
# Run from the repository root:  Rscript tests/reference_glm/make_references.R
suppressPackageStartupMessages({
  library(sandwich); library(clubSandwich); library(geepack)
})
RNGkind("Mersenne-Twister", "Inversion", "Rejection")
out <- "tests/reference_glm"

# --- datasets ------------------------------------------------------------------------------
set.seed(20151)
sizes <- sample(5:25, 20, replace = TRUE)
subject <- rep(seq_along(sizes), sizes)
X <- unlist(lapply(sizes, function(n) rep_len(0:1, n)))
z <- round(rnorm(length(subject)), 3)
u <- rnorm(length(sizes), sd = 0.9)[subject]
binary <- data.frame(y = rbinom(length(subject), 1, plogis(0.3 + 0.6 * X - 0.4 * z + u)), X = X, z = z,
                     subject = subject)
write.csv(binary, file.path(out, "data", "binary_clustered.csv"), row.names = FALSE)

set.seed(20152)
sizes <- sample(4:15, 15, replace = TRUE)
subject <- rep(seq_along(sizes), sizes)
X <- unlist(lapply(sizes, function(n) rep_len(0:1, n)))
z <- round(rnorm(length(subject)), 3)
u <- rnorm(length(sizes), sd = 0.5)[subject]
counts <- data.frame(y = rpois(length(subject), exp(0.8 + 0.3 * X + 0.2 * z + u)), X = X, z = z, subject = subject)
write.csv(counts, file.path(out, "data", "counts_clustered.csv"), row.names = FALSE)

# 12 subjects x 10 items, counterbalanced as the crossed DGP (odd subjects: odd items at -0.5)
set.seed(20153)
crossed <- expand.grid(item = 1:10, subject = 1:12)[, c("subject", "item")]
crossed$list <- ifelse(crossed$subject %% 2 == 1, 1, 2)
crossed$condition <- ifelse((crossed$item %% 2 == 1) == (crossed$list == 1), -0.5, 0.5)
S <- rnorm(12, sd = 1); I <- rnorm(10, sd = 0.8)
crossed$y <- rbinom(nrow(crossed), 1, plogis(0.8 + 0.7 * crossed$condition + S[crossed$subject] + I[crossed$item]))
crossed <- crossed[, c("y", "condition", "subject", "item", "list")]
write.csv(crossed, file.path(out, "data", "crossed_accuracy.csv"), row.names = FALSE)

cbpp <- read.csv("tests/reference_glmm/data/cbpp.csv")
cbpp$period <- factor(cbpp$period)
stopifnot(nrow(cbpp) == 56, !is.unsorted(cbpp$herd))  # geeglm takes clusters as contiguous rows

# --- GLM: vcov, vcovHC, vcovCL, clubSandwich CR2 -----------------------------------------------
rows <- list()
add <- function(dataset, model, est, se, df) {
  rows[[length(rows) + 1]] <<- data.frame(dataset = dataset, model = model, term = names(est),
                                          estimate = unname(est), std_error = unname(se), df = unname(df))
}
tight <- glm.control(epsilon = 1e-14, maxit = 100)
# glm stops on the deviance, which leaves the coefficients about sqrt(epsilon) from the optimum
# when Fisher scoring converges linearly (non-canonical links), and keeps the bread of the
# next-to-last step: single further steps from the previous estimate converge to machine precision.
converged_glm <- function(family, data, formula = y ~ X + z) {
  fit <- glm(formula, family, data, control = tight)
  for (step in 1:100) fit <- suppressWarnings(glm(formula, family, data, start = coef(fit),
                                                   control = glm.control(maxit = 1)))
  fit
}
# cbind(k, n - k): proportions k/n with prior weights n, every sandwich as for any weighted glm
trials <- cbind(incidence, size - incidence) ~ period
fits <- list(
  binary_logit = list(data = binary, fit = converged_glm(binomial("logit"), binary), cluster = "subject"),
  binary_probit = list(data = binary, fit = converged_glm(binomial("probit"), binary), cluster = "subject"),
  counts_log = list(data = counts, fit = converged_glm(poisson("log"), counts), cluster = "subject"),
  cbpp_logit = list(data = cbpp, fit = converged_glm(binomial("logit"), cbpp, trials), cluster = "herd"),
  cbpp_probit = list(data = cbpp, fit = converged_glm(binomial("probit"), cbpp, trials), cluster = "herd")
)
stopifnot(all.equal(weights(fits$cbpp_logit$fit, "prior"), cbpp$size, check.attributes = FALSE))
for (name in names(fits)) {
  fit <- fits[[name]]$fit; data <- fits[[name]]$data
  cluster <- data[[fits[[name]]$cluster]]; by <- reformulate(fits[[name]]$cluster)
  b <- coef(fit); G <- length(unique(cluster))
  names(b)[1] <- "Intercept"
  se <- function(V) sqrt(diag(V))
  add(name, "iid", b, se(vcov(fit)), Inf)
  for (type in c("HC0", "HC1", "HC2", "HC3")) add(name, type, b, se(vcovHC(fit, type = type)), Inf)
  # vcovCL's default type is HC1 for lm objects only and HC0 otherwise, so for a glm its default
  # is G/(G-1) alone (cadjust); type = "HC1" adds (n-1)/(n-p): CR1S here.
  add(name, "CR0", b, se(vcovCL(fit, cluster = by, type = "HC0", cadjust = FALSE)), G - 1)
  add(name, "CR1", b, se(vcovCL(fit, cluster = by)), G - 1)
  add(name, "CR1S", b, se(vcovCL(fit, cluster = by, type = "HC1")), G - 1)
  cr2 <- coef_test(fit, vcov = "CR2", cluster = cluster, test = "Satterthwaite")
  add(name, "CR2", b, cr2$SE, cr2$df_Satt)
  # cross-checks: clubSandwich's CR1 and CR1S equal sandwich's vcovCL with types HC0 and HC1
  same <- function(a, b) isTRUE(all.equal(unname(as.matrix(a)), unname(as.matrix(b)), tolerance = 1e-10))
  stopifnot(same(vcovCR(fit, cluster = cluster, type = "CR1"), vcovCL(fit, cluster = by)),
            same(vcovCR(fit, cluster = cluster, type = "CR1S"), vcovCL(fit, cluster = by, type = "HC1")))
}
write.csv(do.call(rbind, rows), file.path(out, "glm.csv"), row.names = FALSE)

# --- GEE: geepack, and Mancl-DeRouen by hand ---------------------------------------------------
# Bias-corrected sandwich (Mancl & DeRouen 2001): with D_g = diag(dmu/deta) X_g,
# V_g = phi A_g^1/2 R_g A_g^1/2 (A_g = diag V(mu_g) / w_g, w the prior weights, the trials of a
# cbind response) and H_g = D_g (sum D'V^-1 D)^-1 D_g' V_g^-1,
#   V_MD = M (sum_g D_g' V_g^-1 (I - H_g)^-1 e_g e_g' (I - H_g)^-T V_g^-1 D_g) M,  M = (sum D'V^-1 D)^-1.
mancl_derouen <- function(fit, family) {
  Xm <- model.matrix(fit); eta <- fit$linear.predictors; mu <- fitted(fit)
  d <- family$mu.eta(eta); v <- family$variance(mu) / fit$weights
  phi <- fit$geese$gamma; a <- if (length(fit$geese$alpha)) fit$geese$alpha else 0
  e <- fit$y - mu
  blocks <- lapply(split(seq_along(e), fit$id), function(i) {
    n <- length(i); R <- matrix(a, n, n); diag(R) <- 1
    V <- phi * diag(sqrt(v[i]), n) %*% R %*% diag(sqrt(v[i]), n)
    list(D = d[i] * Xm[i, , drop = FALSE], Vinv = solve(V), e = e[i])
  })
  M <- solve(Reduce(`+`, lapply(blocks, function(b) t(b$D) %*% b$Vinv %*% b$D)))
  meat <- Reduce(`+`, lapply(blocks, function(b) {
    H <- b$D %*% M %*% t(b$D) %*% b$Vinv
    u <- t(b$D) %*% b$Vinv %*% solve(diag(nrow(H)) - H, b$e)
    u %*% t(u)
  }))
  M %*% meat %*% M
}
rows <- list()
for (case in list(list("binary_clustered", binary, binomial("logit"), y ~ X + z, "subject"),
                  list("counts_clustered", counts, poisson("log"), y ~ X + z, "subject"),
                  list("cbpp", cbpp, binomial("logit"), trials, "herd"))) {
  data <- case[[2]]; family <- case[[3]]; formula <- case[[4]]; data$id <- data[[case[[5]]]]
  for (corstr in c("independence", "exchangeable")) {
    fit <- geeglm(formula, id = id, data = data, family = family, corstr = corstr,
                  control = geese.control(epsilon = 1e-12, maxit = 200))
    stopifnot(isTRUE(all.equal(unname(fit$weights), if (case[[1]] == "cbpp") data$size else rep(1, nrow(data)))))
    b <- coef(fit); names(b)[1] <- "Intercept"
    alpha <- if (length(fit$geese$alpha)) unname(fit$geese$alpha) else 0
    for (variance in c("robust", "naive", "mancl_derouen")) {
      V <- switch(variance, robust = fit$geese$vbeta, naive = fit$geese$vbeta.naiv,
                  mancl_derouen = mancl_derouen(fit, family))
      rows[[length(rows) + 1]] <- data.frame(dataset = case[[1]], family = family$family, correlation = corstr,
                                             variance = variance, term = names(b), estimate = unname(b),
                                             std_error = sqrt(diag(V)), scale = fit$geese$gamma, alpha = alpha)
    }
    # under independence the Mancl-DeRouen sandwich of a GLM is clubSandwich's CR3 (cross-check)
    if (corstr == "independence") {
      g <- converged_glm(family, data, formula)
      stopifnot(isTRUE(all.equal(unname(as.matrix(vcovCR(g, cluster = data$id, type = "CR3"))),
                                 unname(mancl_derouen(fit, family)), tolerance = 1e-6)))
    }
  }
}
write.csv(do.call(rbind, rows), file.path(out, "gee.csv"), row.names = FALSE)

# --- ANOVA on by-subject and by-item proportions (and empirical logits), base aov ---------------
rows <- list()
for (transform in c("none", "elogit")) {
  for (unit in c("subject", "item")) {
    cells <- aggregate(cbind(k = y, n = 1) ~ unit + condition,
                       data = transform(crossed, unit = crossed[[unit]]), FUN = sum)
    cells$dv <- if (transform == "none") cells$k / cells$n else log((cells$k + 0.5) / (cells$n - cells$k + 0.5))
    cells$unit <- factor(cells$unit); cells$condition <- factor(cells$condition)
    a <- summary(aov(dv ~ condition + Error(unit / condition), data = cells))
    stratum <- a[[paste0("Error: unit:condition")]][[1]]
    means <- tapply(cells$dv, cells$condition, mean)
    rows[[length(rows) + 1]] <- data.frame(transform = transform, test = if (unit == "subject") "F1" else "F2",
                                           estimate = unname(means[2] - means[1]), F = stratum[["F value"]][1],
                                           df = stratum[["Df"]][2], p_value = stratum[["Pr(>F)"]][1])
  }
}
write.csv(do.call(rbind, rows), file.path(out, "anova_proportions.csv"), row.names = FALSE)
writeLines(c(R.version.string, paste("sandwich", packageVersion("sandwich")),
             paste("clubSandwich", packageVersion("clubSandwich")), paste("geepack", packageVersion("geepack"))),
           file.path(out, "r_versions.txt"))
