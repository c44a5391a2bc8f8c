// {{ cookiecutter._tinygen.name }}: ESP-IDF timer and console for the model's code (see {{ cookiecutter._tinygen.files.tinygen_platform }}.h).
#include "{{ cookiecutter._tinygen.files.tinygen_platform }}.h"

#include <stdio.h>

#include "esp_heap_caps.h"
#include "esp_timer.h"

namespace {{ cookiecutter._tinygen.ns }} {

uint32_t timer_now() { return static_cast<uint32_t>(esp_timer_get_time()); }

uint32_t timer_elapsed_us(uint32_t start) { return timer_now() - start; }

// stdout is the ESP-IDF console (UART or USB, per sdkconfig), what idf.py monitor shows.
void print_line(const char* text) { printf("%s\n", text); }
{%- if cookiecutter._tinygen.arena.placement == "psram" %}

// External PSRAM, 16-byte aligned (as TFLite-Micro wants the arena); nullptr without it.
void* allocate_psram(size_t bytes) {
  return heap_caps_aligned_alloc(16, bytes, MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT);
}
{%- endif %}

}  // namespace {{ cookiecutter._tinygen.ns }}
