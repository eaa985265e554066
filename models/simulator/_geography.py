"""The simulated world: cities, countries, currencies and the merchant categories in them.

Cities (not just countries) matter because card-present fraud is caught by distance and
speed: genuine shoppers stay near home, so a cloned card used an ocean away stands out.
Currencies carry rough exchange rates so amounts look local, not like euros everywhere.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ATM",
    "CHANNELS",
    "CITIES",
    "COUNTRIES",
    "COUNTRY_CURRENCY",
    "COUNTRY_EUR_RATE",
    "ECOM",
    "HIGH_VALUE_MCCS",
    "HOURLY_WEIGHTS",
    "MCCS",
    "POS",
    "TESTING_MCCS",
    "WEEKDAY_WEIGHTS",
    "City",
    "Mcc",
    "haversine_km",
]

#: Channel codes; the code of a merchant's kind is also the channel of its transactions.
POS: Final = 0
ECOM: Final = 1
ATM: Final = 2
CHANNELS: tuple[str, ...] = ("pos", "ecom", "atm")


class City(NamedTuple):
    """A place where users live and card-present merchants stand."""

    name: str
    country: str
    lat: float
    lon: float
    utc_offset_hours: float
    weight: float


CITIES: tuple[City, ...] = (
    City("Berlin", "DE", 52.520, 13.405, 1, 8),
    City("Munich", "DE", 48.137, 11.575, 1, 5),
    City("Hamburg", "DE", 53.551, 9.994, 1, 4),
    City("Paris", "FR", 48.857, 2.352, 1, 8),
    City("Lyon", "FR", 45.764, 4.836, 1, 3),
    City("Amsterdam", "NL", 52.370, 4.895, 1, 4),
    City("Madrid", "ES", 40.417, -3.704, 1, 5),
    City("Barcelona", "ES", 41.385, 2.173, 1, 4),
    City("Rome", "IT", 41.903, 12.496, 1, 4),
    City("Milan", "IT", 45.464, 9.190, 1, 4),
    City("London", "GB", 51.507, -0.128, 0, 8),
    City("Manchester", "GB", 53.480, -2.243, 0, 3),
    City("Dublin", "IE", 53.350, -6.260, 0, 2),
    City("Brussels", "BE", 50.850, 4.350, 1, 2),
    City("Vienna", "AT", 48.208, 16.373, 1, 2),
    City("Zurich", "CH", 47.377, 8.541, 1, 2),
    City("Stockholm", "SE", 59.329, 18.069, 1, 2),
    City("Warsaw", "PL", 52.230, 21.012, 1, 3),
    City("Lisbon", "PT", 38.722, -9.139, 0, 2),
    City("New York", "US", 40.713, -74.006, -5, 4),
    City("Chicago", "US", 41.878, -87.630, -6, 2),
    City("Los Angeles", "US", 34.052, -118.244, -8, 2),
    City("Toronto", "CA", 43.653, -79.383, -5, 1),
    City("Mexico City", "MX", 19.433, -99.133, -6, 1),
    City("Sao Paulo", "BR", -23.550, -46.633, -3, 1),
    City("Dubai", "AE", 25.205, 55.270, 4, 1),
    City("Johannesburg", "ZA", -26.204, 28.047, 2, 1),
    City("Mumbai", "IN", 19.076, 72.878, 5.5, 1),
    City("Bangkok", "TH", 13.756, 100.502, 7, 1),
    City("Singapore", "SG", 1.352, 103.820, 8, 1),
    City("Sydney", "AU", -33.869, 151.209, 10, 1),
)

#: ISO 4217 currency per ISO 3166 alpha-2 country; all have two minor-unit digits.
COUNTRY_CURRENCY: dict[str, str] = {
    "DE": "EUR", "FR": "EUR", "NL": "EUR", "ES": "EUR", "IT": "EUR", "IE": "EUR",
    "BE": "EUR", "AT": "EUR", "PT": "EUR", "GB": "GBP", "CH": "CHF", "SE": "SEK",
    "PL": "PLN", "US": "USD", "CA": "CAD", "MX": "MXN", "BR": "BRL", "AE": "AED",
    "ZA": "ZAR", "IN": "INR", "TH": "THB", "SG": "SGD", "AU": "AUD",
}  # fmt: skip

_EUR_RATE: dict[str, float] = {
    "EUR": 1.0, "GBP": 0.85, "CHF": 0.94, "SEK": 11.2, "PLN": 4.3, "USD": 1.08,
    "CAD": 1.47, "MXN": 18.5, "BRL": 5.6, "AED": 3.97, "ZAR": 20.0, "INR": 90.0,
    "THB": 38.0, "SGD": 1.45, "AUD": 1.65,
}  # fmt: skip

#: Countries in a fixed order; arrays index them by position.
COUNTRIES: tuple[str, ...] = tuple(COUNTRY_CURRENCY)

#: Units of local currency per euro, by country position, to make amounts look local.
COUNTRY_EUR_RATE: NDArray[np.float64] = np.array(
    [_EUR_RATE[COUNTRY_CURRENCY[country]] for country in COUNTRIES]
)


class Mcc(NamedTuple):
    """A merchant category: which kind of merchant uses it and how big its tickets are."""

    code: str
    kind: int
    weight: float
    amount_factor: float


MCCS: tuple[Mcc, ...] = (
    Mcc("5411", POS, 30, 1.6),  # grocery stores
    Mcc("5812", POS, 15, 1.8),  # restaurants
    Mcc("5814", POS, 15, 0.5),  # fast food
    Mcc("5541", POS, 10, 2.0),  # service stations
    Mcc("5912", POS, 8, 0.9),  # drug stores
    Mcc("4121", POS, 5, 1.0),  # taxis
    Mcc("5651", POS, 6, 2.5),  # family clothing
    Mcc("5311", POS, 5, 2.5),  # department stores
    Mcc("5732", POS, 3, 5.0),  # electronics
    Mcc("5944", POS, 1, 8.0),  # jewellery
    Mcc("7011", POS, 2, 6.0),  # hotels
    Mcc("5999", ECOM, 20, 1.5),  # miscellaneous retail
    Mcc("5815", ECOM, 15, 0.4),  # digital media
    Mcc("5816", ECOM, 10, 0.6),  # digital games
    Mcc("4816", ECOM, 8, 0.5),  # network services
    Mcc("4899", ECOM, 10, 0.7),  # streaming and subscriptions
    Mcc("5942", ECOM, 8, 0.9),  # books
    Mcc("5732", ECOM, 8, 5.0),  # electronics
    Mcc("5311", ECOM, 7, 2.5),  # department stores
    Mcc("5969", ECOM, 5, 1.2),  # direct marketing
    Mcc("4722", ECOM, 4, 10.0),  # travel agencies
    Mcc("6011", ATM, 1, 4.0),  # cash withdrawal
)

#: Categories fraudsters use to check that a stolen card works: cheap, instant, digital.
TESTING_MCCS: frozenset[str] = frozenset({"5815", "5816", "4816", "4899", "5999"})

#: Categories a spree goes for: goods that resell well.
HIGH_VALUE_MCCS: frozenset[str] = frozenset({"5732", "5944", "5311", "5651", "4722", "5999"})

#: Relative activity per local hour: quiet nights, a lunch peak and an evening peak.
HOURLY_WEIGHTS: NDArray[np.float64] = np.array(
    [0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.2, 2.0, 2.4, 2.6, 3.0,
     3.6, 3.4, 2.8, 2.6, 2.8, 3.4, 4.0, 4.0, 3.4, 2.4, 1.4, 0.7]
)  # fmt: skip
HOURLY_WEIGHTS = HOURLY_WEIGHTS / HOURLY_WEIGHTS.sum()

#: Relative activity per weekday, Monday first: busier towards the weekend, quiet Sunday.
WEEKDAY_WEIGHTS: NDArray[np.float64] = np.array([0.9, 0.95, 1.0, 1.05, 1.25, 1.35, 0.75])

_EARTH_RADIUS_KM = 6371.0


def haversine_km(
    lat1: NDArray[np.float64] | float,
    lon1: NDArray[np.float64] | float,
    lat2: NDArray[np.float64] | float,
    lon2: NDArray[np.float64] | float,
) -> NDArray[np.float64]:
    """Great-circle distance, the yardstick of impossible travel; vectorised over arrays."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi = phi2 - phi1
    dlmb = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2
    return np.asarray(2 * _EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))
