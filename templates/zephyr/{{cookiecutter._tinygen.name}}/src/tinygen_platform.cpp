// {{ cookiecutter._tinygen.name }}: Zephyr timer and console for the firmware core (see tinygen_platform.h).
#include "tinygen_platform.h"

#include <zephyr/kernel.h>
#include <zephyr/sys/printk.h>

namespace tinygen {

// The hardware cycle counter: finer than the system tick, and the unsigned difference
// stays correct across one wrap.
uint32_t timer_now() { return k_cycle_get_32(); }

uint32_t timer_elapsed_us(uint32_t start) { return k_cyc_to_us_floor32(k_cycle_get_32() - start); }

// The Zephyr console (what `west build -t run` and twister read).
void print_line(const char* text) { printk("%s\n", text); }

}  // namespace tinygen
