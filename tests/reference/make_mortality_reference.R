#!/usr/bin/env Rscript
## clubSandwich's panel-data vignette model ("panel-data-CRVE"): motor-vehicle death rates of
## 51 states, 1970-1983, with state and year fixed effects, CR2 clustered by state,
##   lm(mrate ~ 0 + legal + beertaxa + factor(state) + factor(year))
##   coef_test(fit, vcov = "CR2", cluster = state, test = "Satterthwaite").
## With a state fixed effect, every I - H_gg is singular; clubSandwich takes the generalised
## inverse symmetric square root (eigenvalues below 1e-12 set to 0).
##
## Run from the repository root:
##   Rscript tests/reference/make_mortality_reference.R
##
## Output: tests/reference/data/mortality_rates.csv (the vignette's subset of
##         clubSandwich::MortalityRates: mrate, legal, beertaxa, state, year; %.17g) and
##         tests/reference/cr2_mortality.csv (term, estimate, std_error, df, p_value of legal
##         and beertaxa; %.17g).
suppressPackageStartupMessages(library(clubSandwich))

script_dir <- function() {
  args <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", args[grep("^--file=", args)])
  if (length(f) == 1) dirname(normalizePath(f)) else normalizePath("tests/reference")
}
ref_dir <- script_dir()
g17 <- function(v) sprintf("%.17g", v)

data(MortalityRates)
MV_deaths <- subset(MortalityRates, cause == "Motor Vehicle" & year <= 1983 & !is.na(beertaxa))
d <- MV_deaths[, c("mrate", "legal", "beertaxa", "state", "year")]
write.csv(data.frame(mrate = g17(d$mrate), legal = g17(d$legal), beertaxa = g17(d$beertaxa),
                     state = d$state, year = d$year),
          file.path(ref_dir, "data", "mortality_rates.csv"), row.names = FALSE, quote = FALSE)

fit <- lm(mrate ~ 0 + legal + beertaxa + factor(state) + factor(year), data = MV_deaths)
test <- coef_test(fit, vcov = "CR2", cluster = MV_deaths$state, test = "Satterthwaite")[1:2, ]
out <- data.frame(term = c("legal", "beertaxa"), estimate = g17(test$beta), std_error = g17(test$SE),
                  df = g17(test$df_Satt), p_value = g17(test$p_Satt))
write.csv(out, file.path(ref_dir, "cr2_mortality.csv"), row.names = FALSE, quote = FALSE)
