// {{ cookiecutter._tinygen.name }}: ESP-IDF timer for the firmware core (see tinygen_platform.h).
#include "tinygen_platform.h"

#include "esp_timer.h"

namespace tinygen {

uint32_t timer_now() { return static_cast<uint32_t>(esp_timer_get_time()); }

uint32_t timer_elapsed_us(uint32_t start) { return timer_now() - start; }

}  // namespace tinygen
