// {{ cookiecutter._tinygen.name }}: Zephyr timer and console for the model's code (see {{ cookiecutter._tinygen.files.tinygen_platform }}.h).
#include "{{ cookiecutter._tinygen.files.tinygen_platform }}.h"

#include <zephyr/kernel.h>
#include <zephyr/sys/printk.h>

namespace {{ cookiecutter._tinygen.ns }} {

// The hardware cycle counter: finer than the system tick, and the unsigned difference
// stays correct across one wrap.
uint32_t timer_now() { return k_cycle_get_32(); }

uint32_t timer_elapsed_us(uint32_t start) { return k_cyc_to_us_floor32(k_cycle_get_32() - start); }

// The Zephyr console.
void print_line(const char* text) { printk("%s\n", text); }

}  // namespace {{ cookiecutter._tinygen.ns }}
