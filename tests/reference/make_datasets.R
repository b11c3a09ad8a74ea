#!/usr/bin/env Rscript
## Simulate the small datasets used as inputs for the R reference fixtures.
##
## Run from the repository root:
##   Rscript tests/reference/make_datasets.R
##
## Output: tests/reference/data/*.csv (committed; the Python tests never need R).
##
## Reproducibility:
##   * RNG is pinned with RNGkind("Mersenne-Twister", "Inversion", "Rejection")
##     and every dataset uses its own set.seed() below, so each file can be
##     regenerated independently of the others.
##   * Continuous columns are rounded to 6 decimals BEFORE writing, so the CSV
##     text (at most 15 significant digits) denotes the exact value used.
##     Note: R's own text-to-double parser (read.csv / as.numeric) is not always
##     correctly rounded and can be 1 ulp off from the nearest double (which is
##     what Python's float() / pandas' "round_trip" parser return).  Re-applying
##     round(v, 6) after reading restores the nearest double, so readers in R
##     (the check below and make_references.R) do exactly that.
##   * Rows are sorted by cluster/subject (then by trial/item within it).
##   * Integer identifiers (subject, item, cluster, list) start at 1.

RNGkind("Mersenne-Twister", "Inversion", "Rejection")

script_dir <- function() {
  args <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", args[grep("^--file=", args)])
  if (length(f) == 1) dirname(normalizePath(f)) else normalizePath("tests/reference")
}
out_dir <- file.path(script_dir(), "data")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

r6 <- function(v) round(v, 6)

## Draw n rows from N(0, Sigma) with a Cholesky factor (no MASS dependency).
rmvn <- function(n, Sigma) {
  z <- matrix(rnorm(n * ncol(Sigma)), nrow = n)
  z %*% chol(Sigma)
}

write_data <- function(df, name) {
  path <- file.path(out_dir, name)
  write.csv(df, path, row.names = FALSE, quote = FALSE)
  ## round-trip check: the CSV must reproduce the in-memory values exactly
  back <- read.csv(path)
  stopifnot(identical(dim(back), dim(df)))
  for (v in names(df)) stopifnot(isTRUE(all(round(back[[v]], 6) == df[[v]])))
  cat(sprintf("wrote %-22s %4d rows\n", name, nrow(df)))
}

## ---------------------------------------------------------------------------
## seed_balanced.csv
## 24 subjects x 2 conditions (X = 0/1) x 10 trials = 480 rows.
## y = 800 + 3*X + u0[subject] + u1[subject]*X + e
## (u0, u1) ~ N2(0, [[823.6, -3.2], [-3.2, 15.3]]), e ~ N(0, 27.4).
## ---------------------------------------------------------------------------
set.seed(20240101)
n_subj <- 24; n_trial <- 10
Sigma_u <- matrix(c(823.6, -3.2, -3.2, 15.3), 2, 2)
u <- rmvn(n_subj, Sigma_u)
d <- expand.grid(trial = 1:n_trial, X = 0:1, subject = 1:n_subj)
d <- d[order(d$subject, d$X, d$trial), ]
e <- rnorm(nrow(d), 0, sqrt(27.4))
d$y <- r6(800 + 3 * d$X + u[d$subject, 1] + u[d$subject, 2] * d$X + e)
write_data(d[, c("y", "X", "subject")], "seed_balanced.csv")

## ---------------------------------------------------------------------------
## unbalanced.csv
## 15 clusters, sizes between 3 and 40 (fixed list below, n = 263).
## x = cluster mean component N(0, 1) + within-cluster N(0, 1)  (x varies within
##     cluster and is correlated within cluster)
## z = cluster-level predictor N(0, 1), constant within cluster
## y = 1 + 0.5*x + 1.0*z + u[cluster] + e,  u ~ N(0, 0.8^2),
## e ~ N(0, sd = 0.5 + 0.5*|x|)  (heteroskedastic)
## ---------------------------------------------------------------------------
set.seed(20240102)
sizes <- c(3, 40, 7, 25, 12, 4, 33, 18, 9, 28, 5, 15, 22, 10, 32)
G <- length(sizes)
cluster <- rep(seq_len(G), times = sizes)
xbar <- rnorm(G); z <- rnorm(G); uc <- rnorm(G, 0, 0.8)
x <- r6(xbar[cluster] + rnorm(length(cluster)))
e <- rnorm(length(cluster), 0, 0.5 + 0.5 * abs(x))
y <- r6(1 + 0.5 * x + 1.0 * z[cluster] + uc[cluster] + e)
write_data(data.frame(y = y, x = x, z = r6(z[cluster]), cluster = cluster),
           "unbalanced.csv")

## ---------------------------------------------------------------------------
## few_clusters.csv
## G = 5 clusters x 12 observations.  x ~ N(0, 1) within cluster.
## y = 2 + 1*x + a[cluster] + b[cluster]*x + e
## a ~ N(0, 1), b ~ N(0, 0.5^2) independent, e ~ N(0, 1).
## ---------------------------------------------------------------------------
set.seed(20240103)
G <- 5; m <- 12
cluster <- rep(1:G, each = m)
a <- rnorm(G, 0, 1); b <- rnorm(G, 0, 0.5)
x <- r6(rnorm(G * m))
y <- r6(2 + x + a[cluster] + b[cluster] * x + rnorm(G * m))
write_data(data.frame(y = y, x = x, cluster = cluster), "few_clusters.csv")

## ---------------------------------------------------------------------------
## between_cluster.csv
## 20 clusters, sizes drawn uniformly from 5..15.
## w = between-cluster predictor N(0, 1), constant within cluster
## x = within-cluster predictor N(0, 1)
## y = 0.5 + 0.3*x + 0.6*w + u[cluster] + e,  u ~ N(0, 0.7^2), e ~ N(0, 1)
## ---------------------------------------------------------------------------
set.seed(20240104)
G <- 20
sizes <- sample(5:15, G, replace = TRUE)
cluster <- rep(seq_len(G), times = sizes)
w <- r6(rnorm(G)); uc <- rnorm(G, 0, 0.7)
x <- r6(rnorm(length(cluster)))
y <- r6(0.5 + 0.3 * x + 0.6 * w[cluster] + uc[cluster] + rnorm(length(cluster)))
write_data(data.frame(y = y, x = x, w = w[cluster], cluster = cluster),
           "between_cluster.csv")

## ---------------------------------------------------------------------------
## Crossed subjects x items designs (24 subjects x 12 items, 288 rows each).
## y = 0.4*condition + S0[s] + S1[s]*condition + I0[i] + I1[i]*condition + e
## subject (S0, S1): SDs 0.6, 0.3, correlation 0.2
## item    (I0, I1): SDs 0.5, 0.25, correlation -0.3
## e ~ N(0, 1)
## ---------------------------------------------------------------------------
make_crossed <- function(cond_fun, list_fun) {
  n_s <- 24; n_i <- 12
  mk <- function(sd, r) matrix(c(sd[1]^2, r * sd[1] * sd[2],
                                 r * sd[1] * sd[2], sd[2]^2), 2, 2)
  S <- rmvn(n_s, mk(c(0.6, 0.3), 0.2))
  I <- rmvn(n_i, mk(c(0.5, 0.25), -0.3))
  d <- expand.grid(item = 1:n_i, subject = 1:n_s)
  d <- d[order(d$subject, d$item), ]
  d$list <- list_fun(d$subject)
  d$condition <- cond_fun(d$subject, d$item, d$list)
  e <- rnorm(nrow(d))
  d$y <- r6(0.4 * d$condition + S[d$subject, 1] + S[d$subject, 2] * d$condition +
              I[d$item, 1] + I[d$item, 2] * d$condition + e)
  d[, c("y", "condition", "subject", "item", "list")]
}

## crossed_within.csv: within-subject AND within-item, counterbalanced.
## Subjects alternate lists (odd subject -> list 1, even subject -> list 2).
## List 1: odd items in condition -0.5, even items in +0.5; list 2 the reverse.
set.seed(20240105)
d <- make_crossed(
  cond_fun = function(s, i, l) ifelse((i %% 2 == 1) == (l == 1), -0.5, 0.5),
  list_fun = function(s) ifelse(s %% 2 == 1, 1L, 2L))
write_data(d, "crossed_within.csv")

## crossed_between.csv: within-subject, between-item.
## Items 1-6 are condition -0.5, items 7-12 are +0.5; every subject sees every
## item once, so there is a single list (list = 1 for all rows).
set.seed(20240106)
d <- make_crossed(
  cond_fun = function(s, i, l) ifelse(i <= 6, -0.5, 0.5),
  list_fun = function(s) rep(1L, length(s)))
write_data(d, "crossed_between.csv")

## ---------------------------------------------------------------------------
## singular.csv
## 10 clusters x 8 observations; true random-slope variance is exactly 0.
## y = 1 + 0.5*x + a[cluster] + e,  a ~ N(0, 0.5^2), x ~ N(0, 1), e ~ N(0, 1).
## Fitting y ~ x + (1 + x | cluster) gives a singular fit in lme4
## (make_references.R records lme4::isSingular()).
## ---------------------------------------------------------------------------
set.seed(20240107)
G <- 10; m <- 8
cluster <- rep(1:G, each = m)
a <- rnorm(G, 0, 0.5)
x <- r6(rnorm(G * m))
y <- r6(1 + 0.5 * x + a[cluster] + rnorm(G * m))
write_data(data.frame(y = y, x = x, cluster = cluster), "singular.csv")
