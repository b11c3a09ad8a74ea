"""An omitted confounder: ice-cream sales, price and temperature (the lecture's fourth example).

Each of 12 x salespeople_per_month salespeople works in one month only and makes
sales_per_salesperson sales. The temperature is that month's average daily high in Austin,
Texas; prices follow the temperature; sales rise with temperature and fall with price:

    temp_i   = T[month(i)],
    price_ij = temp_i + N(0, sd_price^2),
    sales_ij = b0 + b_temp * temp_scaled_ij + b_price * price_scaled_ij + u_i + e_ij,
    u_i ~ N(0, sd_salesperson^2),  e_ij ~ N(0, sd_sales^2),

(the lecture's price ~ temp + N(0, s_price^2) and sales ~ b_temp temp + b_price price +
N(0, s_sales^2), with b_temp = 500 and b_price = -200 on the scaled predictors and a random
effect per salesperson). ``temp_scaled`` and ``price_scaled`` are z-scores over the replicate's
rows (mean 0, SD 1 with the n denominator), so the coefficients on them are exactly b_temp and
b_price in every replicate. Prices are in the temperature's units (the lecture's formula has a
unit slope); only their correlation with temperature matters once they are scaled, and with
sd_price = 8 it is 12.29 / sqrt(12.29^2 + 8^2) = 0.84 over the rows.

T: NOAA 1991-2020 normal daily maximum temperatures at Austin Camp Mabry (°F), January to
December, as quoted in KXAN's "Austin's weather extremes" series (2023). Their mean is 80.5 °F
and their SD over months (n denominator) 12.3 °F.

Temperature is constant within a salesperson, so leaving it out of the model loads its effect
onto price through the between-salesperson variation of price. A random-intercept model of
``sales ~ price_scaled`` then mixes the within-salesperson slope (-200, unbiased) with a
strongly positive between-salesperson slope; with the defaults the mix is +150 in expectation
(lecture: +148.6), while ``sales ~ price_scaled + temp_scaled`` recovers -200 and +500
(lecture, one draw: -228 and +492). The defaults (sd_price = 8, sd_salesperson = 210,
sd_sales = 1980) were chosen for this by simulating the random-intercept REML fit (4000
replicates: +150.7, Monte Carlo SE 1.3). They also give the lecture's other figures in
expectation: residual variance 3.96e6 without temperature and 3.92e6 with it (lecture 3.93e6
and 3.92e6), group variance 92 000 without temperature (lecture 95 000) and 46 000 with it
(lecture 15 900, a single draw whose standard error is about 35 000), SEs of the intercept 78
and 70 (lecture 79 and 64), of price 71 and 111 and of temperature 116 (lecture 77, 107 and
107).

Prices are drawn in every replicate (``fixed_design`` is False). Columns: ``sales`` (float),
``price``, ``price_scaled``, ``temp``, ``temp_scaled`` (float), ``salesperson`` (int,
1..12 x salespeople_per_month), ``month`` (int, 1..12). Truth: ``Intercept`` = b0,
``price_scaled`` = b_price, ``temp_scaled`` = b_temp.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pandas as pd

from sims.dgp.base import DGP, require, require_nonnegative, require_positive_int

# Normal daily maximum temperature (°F), Austin Camp Mabry, 1991-2020, January..December.
AUSTIN_MONTHLY_HIGHS_F = (62.5, 66.5, 73.3, 80.3, 86.9, 93.2, 96.6, 97.8, 91.4, 82.5, 71.5, 63.9)


def zscore(values: np.ndarray) -> np.ndarray:
    """(values - mean) / SD, the SD with the n denominator."""
    return (values - values.mean()) / values.std()


@dataclasses.dataclass(frozen=True)
class OmittedConfounderDGP(DGP):
    salespeople_per_month: int = 3
    sales_per_salesperson: int = 30
    intercept: float = 7250.0
    temp_effect: float = 500.0
    price_effect: float = -200.0
    sd_price: float = 8.0
    sd_salesperson: float = 210.0
    sd_sales: float = 1980.0

    fixed_design: ClassVar[bool] = False
    columns: ClassVar[dict[str, str]] = {
        "sales": "f", "price": "f", "price_scaled": "f", "temp": "f", "temp_scaled": "f",
        "salesperson": "i", "month": "i",
    }

    def __post_init__(self):
        require_positive_int(self.salespeople_per_month, "salespeople_per_month")
        require_positive_int(self.sales_per_salesperson, "sales_per_salesperson")
        for name in ("intercept", "temp_effect", "price_effect"):
            require(np.isfinite(getattr(self, name)), name, f"must be a finite number, got {getattr(self, name)!r}")
        require(np.isfinite(self.sd_price) and self.sd_price > 0, "sd_price",
                f"must be > 0 (otherwise price and temperature are collinear), got {self.sd_price!r}")
        require_nonnegative(self.sd_salesperson, "sd_salesperson")
        require_nonnegative(self.sd_sales, "sd_sales")

    @property
    def n_salespeople(self) -> int:
        return len(AUSTIN_MONTHLY_HIGHS_F) * self.salespeople_per_month

    def generate(self, rng: np.random.Generator) -> pd.DataFrame:
        rows_per_month = self.salespeople_per_month * self.sales_per_salesperson
        month = np.repeat(np.arange(1, len(AUSTIN_MONTHLY_HIGHS_F) + 1), rows_per_month)
        salesperson = np.repeat(np.arange(1, self.n_salespeople + 1), self.sales_per_salesperson)
        temp = np.asarray(AUSTIN_MONTHLY_HIGHS_F)[month - 1]
        price = temp + rng.normal(0.0, self.sd_price, size=len(temp))
        temp_scaled, price_scaled = zscore(temp), zscore(price)
        effect = rng.normal(0.0, self.sd_salesperson, size=self.n_salespeople)
        sales = (self.intercept + self.temp_effect * temp_scaled + self.price_effect * price_scaled
                 + effect[salesperson - 1] + rng.normal(0.0, self.sd_sales, size=len(temp)))
        return pd.DataFrame({
            "sales": sales, "price": price, "price_scaled": price_scaled,
            "temp": temp, "temp_scaled": temp_scaled, "salesperson": salesperson, "month": month,
        })

    def truth(self) -> dict[str, float]:
        return {"Intercept": self.intercept, "price_scaled": self.price_effect, "temp_scaled": self.temp_effect}
