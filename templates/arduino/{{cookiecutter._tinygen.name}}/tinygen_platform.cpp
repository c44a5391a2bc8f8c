// {{ cookiecutter._tinygen.name }}: Arduino timer and console for the firmware core (see tinygen_platform.h).
#include <Arduino.h>

#include "tinygen_platform.h"

namespace tinygen {

uint32_t timer_now() { return static_cast<uint32_t>(micros()); }

uint32_t timer_elapsed_us(uint32_t start) { return timer_now() - start; }

// The Serial Monitor; the sketch opens Serial in setup().
void print_line(const char* text) { Serial.println(text); }

}  // namespace tinygen
