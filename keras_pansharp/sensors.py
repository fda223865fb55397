"""Registry of satellite sensors used for pan-sharpening.

Every number here comes from the reference pan-sharpening toolbox (see
`REFERENCE.md` §2): band order, radiometric resolution (bit depth and maximum
digital number, DN) and the modulation transfer function (MTF) gains at the
Nyquist frequency used to design the MTF-matched low-pass filters.

Example:

>>> from keras_pansharp.sensors import get_sensor
>>> wv3 = get_sensor("wv3")
>>> wv3.num_bands, wv3.max_value
(8, 2047.0)
>>> wv3.rgbn_indices
(1, 2, 4, 6)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

__all__ = [
    "Sensor",
    "get_sensor",
    "list_sensors",
    "register_sensor",
    "generic_sensor",
    "UnknownSensorError",
]


class UnknownSensorError(ValueError):
    """Raised when a sensor name is not in the registry."""


@dataclasses.dataclass(frozen=True)
class Sensor:
    """Description of one multispectral + panchromatic sensor.

    Args:
        name: canonical upper-case name, e.g. `"WV3"`.
        band_names: names of the MS bands, in file order.
        bit_depth: radiometric resolution in bits (e.g. 11).
        max_value: maximum digital number used to normalise images to [0, 1]
            (e.g. 2047 for 11-bit data, 1023 for the PanCollection GF2 files).
        ms_gnyq: MTF gain at Nyquist of each MS band (length = number of bands).
        pan_gnyq: MTF gain at Nyquist of the PAN band.
        rgbn_indices: 0-based indices of the blue, green, red and NIR bands.
        ratio: PAN/MS resolution ratio (4 for every sensor here).
        toolbox_name: name the MATLAB toolbox uses for this sensor's MTF
            (`"none"` for the generic 0.3 default).
    """

    name: str
    band_names: tuple[str, ...]
    bit_depth: int
    max_value: float
    ms_gnyq: tuple[float, ...]
    pan_gnyq: float
    rgbn_indices: tuple[int, int, int, int] = (0, 1, 2, 3)
    ratio: int = 4
    toolbox_name: str = "none"

    def __post_init__(self):
        if len(self.ms_gnyq) != len(self.band_names):
            raise ValueError(
                f"Sensor {self.name!r}: {len(self.ms_gnyq)} MTF gains for "
                f"{len(self.band_names)} bands."
            )
        for g in (*self.ms_gnyq, self.pan_gnyq):
            if not 0.0 < g < 1.0:
                raise ValueError(
                    f"Sensor {self.name!r}: MTF gains must be in (0, 1), got {g}."
                )
        if max(self.rgbn_indices) >= len(self.band_names):
            raise ValueError(
                f"Sensor {self.name!r}: rgbn_indices {self.rgbn_indices} out of "
                f"range for {len(self.band_names)} bands."
            )

    @property
    def num_bands(self) -> int:
        """Number of MS bands."""
        return len(self.band_names)

    def rgbn(self) -> Sensor:
        """The 4-band (blue, green, red, NIR) view of this sensor.

        Returns `self` for 4-band sensors. For 8-band sensors, returns a new
        `Sensor` named e.g. `"WV3_RGBN"` whose bands and MTF gains are the
        subset at `rgbn_indices`.
        """
        if self.num_bands == 4 and self.rgbn_indices == (0, 1, 2, 3):
            return self
        idx = self.rgbn_indices
        return dataclasses.replace(
            self,
            name=f"{self.name}_RGBN",
            band_names=tuple(self.band_names[i] for i in idx),
            ms_gnyq=tuple(self.ms_gnyq[i] for i in idx),
            rgbn_indices=(0, 1, 2, 3),
        )


_RGBN = ("blue", "green", "red", "nir")
_EIGHT = (
    "coastal",
    "blue",
    "green",
    "yellow",
    "red",
    "red_edge",
    "nir1",
    "nir2",
)

_REGISTRY: dict[str, Sensor] = {}
_ALIASES: dict[str, str] = {}


def register_sensor(sensor: Sensor, aliases: Sequence[str] = ()) -> Sensor:
    """Add a sensor (and optional alias names) to the registry.

    Names are case-insensitive. Re-registering an existing name raises.

    Args:
        sensor: the `Sensor` to add.
        aliases: other names that resolve to it.

    Returns:
        The registered sensor.
    """
    for key in (sensor.name, *aliases):
        k = key.strip().lower()
        if k in _ALIASES:
            raise ValueError(f"Sensor name {key!r} is already registered.")
    _REGISTRY[sensor.name.lower()] = sensor
    for key in (sensor.name, *aliases):
        _ALIASES[key.strip().lower()] = sensor.name.lower()
    return sensor


register_sensor(
    Sensor(
        name="WV3",
        band_names=_EIGHT,
        bit_depth=11,
        max_value=2047.0,
        ms_gnyq=(0.325, 0.355, 0.360, 0.350, 0.365, 0.360, 0.335, 0.315),
        pan_gnyq=0.14,
        rgbn_indices=(1, 2, 4, 6),
        toolbox_name="WV3",
    ),
    aliases=("worldview3", "worldview-3"),
)
register_sensor(
    Sensor(
        name="WV2",
        band_names=_EIGHT,
        bit_depth=11,
        max_value=2047.0,
        ms_gnyq=(0.35,) * 7 + (0.27,),
        pan_gnyq=0.11,
        rgbn_indices=(1, 2, 4, 6),
        toolbox_name="WV2",
    ),
    aliases=("worldview2", "worldview-2"),
)
register_sensor(
    Sensor(
        name="GF2",
        band_names=_RGBN,
        bit_depth=10,
        max_value=1023.0,
        ms_gnyq=(0.3,) * 4,
        pan_gnyq=0.15,
        toolbox_name="none",
    ),
    aliases=("gaofen2", "gaofen-2"),
)
register_sensor(
    Sensor(
        name="QB",
        band_names=_RGBN,
        bit_depth=11,
        max_value=2047.0,
        ms_gnyq=(0.34, 0.32, 0.30, 0.22),
        pan_gnyq=0.15,
        toolbox_name="QB",
    ),
    aliases=("quickbird",),
)
register_sensor(
    Sensor(
        name="IKONOS",
        band_names=_RGBN,
        bit_depth=11,
        max_value=2047.0,
        ms_gnyq=(0.26, 0.28, 0.29, 0.28),
        pan_gnyq=0.17,
        toolbox_name="IKONOS",
    ),
)
register_sensor(
    Sensor(
        name="GeoEye1",
        band_names=_RGBN,
        bit_depth=11,
        max_value=2047.0,
        ms_gnyq=(0.23,) * 4,
        pan_gnyq=0.16,
        toolbox_name="GeoEye1",
    ),
    aliases=("geoeye", "geoeye-1", "ge1", "wv4", "worldview4"),
)

# Pleiades and SPOT-6/7 (blue, green, red, NIR; 12-bit). The reference
# toolbox has no MTF values for them: the toolbox defaults (0.3 MS, 0.15 PAN)
# are used, as its `genMTF` does for any unlisted sensor.
register_sensor(
    Sensor(
        name="Pleiades",
        band_names=_RGBN,
        bit_depth=12,
        max_value=4095.0,
        ms_gnyq=(0.3,) * 4,
        pan_gnyq=0.15,
        toolbox_name="none",
    ),
    aliases=("phr", "pleiades1a", "pleiades1b", "pleiades-1a", "pleiades-1b"),
)
register_sensor(
    Sensor(
        name="SPOT6",
        band_names=_RGBN,
        bit_depth=12,
        max_value=4095.0,
        ms_gnyq=(0.3,) * 4,
        pan_gnyq=0.15,
        toolbox_name="none",
    ),
    aliases=("spot-6", "spot7", "spot-7"),
)


def generic_sensor(
    num_bands: int,
    bit_depth: int = 11,
    max_value: float | None = None,
    name: str = "GENERIC",
) -> Sensor:
    """A sensor with the toolbox's default MTF gains (0.3 MS, 0.15 PAN).

    Use it explicitly for sensors not in the registry; `get_sensor` never
    falls back to it silently.

    Args:
        num_bands: number of MS bands.
        bit_depth: radiometric resolution in bits.
        max_value: maximum DN; defaults to `2**bit_depth - 1`.
        name: a name for messages.

    Returns:
        A `Sensor`. Its `rgbn_indices` are `(0, 1, 2, 3)` (the first four
        bands) when it has at least 4 bands.
    """
    if num_bands < 1:
        raise ValueError(f"num_bands must be >= 1, got {num_bands}.")
    if max_value is None:
        max_value = float(2**bit_depth - 1)
    names = _RGBN if num_bands == 4 else tuple(f"b{i}" for i in range(num_bands))
    rgbn = (0, 1, 2, 3) if num_bands >= 4 else (0,) * 4
    return Sensor(
        name=name,
        band_names=names,
        bit_depth=bit_depth,
        max_value=float(max_value),
        ms_gnyq=(0.3,) * num_bands,
        pan_gnyq=0.15,
        rgbn_indices=rgbn,
        toolbox_name="none",
    )


def get_sensor(sensor: str | Sensor) -> Sensor:
    """Look up a sensor by (case-insensitive) name.

    Args:
        sensor: a name such as `"wv3"`, `"WorldView-3"`, `"gf2"`, `"QB"`, or a
            `Sensor` instance (returned unchanged).

    Returns:
        The `Sensor`.

    Raises:
        UnknownSensorError: if the name is not registered. Use
            `generic_sensor(num_bands)` for other sensors.
    """
    if isinstance(sensor, Sensor):
        return sensor
    if not isinstance(sensor, str):
        raise TypeError(
            f"sensor must be a name or a Sensor, got {type(sensor).__name__}."
        )
    key = sensor.strip().lower()
    if key.endswith("_rgbn"):
        return get_sensor(key[: -len("_rgbn")]).rgbn()
    if key not in _ALIASES:
        raise UnknownSensorError(
            f"Unknown sensor {sensor!r}. Known sensors: {', '.join(list_sensors())}. "
            "For another sensor use keras_pansharp.sensors.generic_sensor(num_bands)."
        )
    return _REGISTRY[_ALIASES[key]]


def list_sensors() -> list[str]:
    """Canonical names of all registered sensors."""
    return [s.name for s in _REGISTRY.values()]
