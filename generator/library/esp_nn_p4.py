"""esp-nn 1.2.3's ESP32-P4 convolution for padded layers whose window holds under 16 values:
how much scratch its size function asks and how much its tiled kernel writes. One source for
the arena's scratch rule (memory/scratch.py `esp_nn_conv_esp32p4_1_2_3`) and the numerics
condition that finds where the second exceeds the first (numerics.py `p4_conv_tiled_overrun`).

All from espressif/esp-nn@5f0a807:src/convolution/esp_nn_conv_esp32p4.c.
"""

from __future__ import annotations

L1D_BUDGET = 32768  # :589, the bytes of L1 data cache the kernels plan their buffers in


def effective_channels(f_w: int) -> int:
    """The channels the tiled kernel pads each input pixel to, so that one filter row holds at
    least 16 values, rounded up to 16 (:929-935, :707-720)."""
    return (((16 + f_w - 1) // f_w) + 15) & ~15


def tiled_scratch_asked(in_h: int, in_w: int, in_ch: int, f_h: int, f_w: int, out_h: int, out_ch: int,
                        pad_h: int, pad_w: int, s_h: int) -> int:
    """What esp_nn_get_conv_scratch_size_esp32p4 asks for a padded layer with a window under 16
    values (:938-965): the whole padded input with the real channel count when it fits the L1D
    budget, else as many input rows as the budget holds at the padded channel count."""
    align, acc = 32, out_ch * 4
    padded_w = in_w + 2 * pad_w
    full = padded_w * (in_h + 2 * pad_h) * in_ch
    if full + acc <= L1D_BUDGET:
        return full + f_w * f_h * ((in_ch + 15) & ~15) * out_ch + align + acc
    eff, filt = (effective_channels(f_w), f_w * f_h * effective_channels(f_w) * out_ch) if f_w * in_ch < 16 \
        else (in_ch, 0)
    row = padded_w * eff
    budget = L1D_BUDGET - acc - filt
    tile = 1
    if budget > 0 and f_h * row <= budget:
        tile = min(out_h, (budget - f_h * row) // (s_h * row) + 1)
    return ((tile - 1) * s_h + f_h + 2 * pad_h) * row + filt + align + acc


def tiled_scratch_written(in_h: int, in_w: int, f_h: int, f_w: int, out_h: int, out_ch: int,
                          pad_h: int, pad_w: int, s_h: int) -> int:
    """The scratch bytes esp_nn_conv_s8_tiled really uses (:707-867): accumulators, the filter
    repacked to the padded channel count, and input rows up to (T-1)*s_h + kh + pad_h at that
    count (in_row_end omits -pad_h at :810-812), T the output rows one tile holds."""
    eff = effective_channels(f_w)
    padded_w = in_w + 2 * pad_w
    row, used, tile = padded_w * eff, out_ch * 4 + f_w * f_h * eff * out_ch, out_h
    if padded_w * (in_h + 2 * pad_h) * eff + used > L1D_BUDGET:
        budget = L1D_BUDGET - used
        if f_h * row <= budget:
            tile = min(out_h, max(1, (budget - f_h * row) // (s_h * row) + 1))
    return used + ((tile - 1) * s_h + f_h + pad_h) * row
