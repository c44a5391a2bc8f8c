// {{ cookiecutter._tinygen.name }}: Arduino timer and console for the model's code (see {{ cookiecutter._tinygen.files.tinygen_platform }}.h).
#include <Arduino.h>

#include "{{ cookiecutter._tinygen.files.tinygen_platform }}.h"

namespace {{ cookiecutter._tinygen.ns }} {

uint32_t timer_now() { return static_cast<uint32_t>(micros()); }

uint32_t timer_elapsed_us(uint32_t start) { return timer_now() - start; }

// The Serial Monitor: your sketch opens Serial (Serial.begin) before model_setup().
void print_line(const char* text) { Serial.println(text); }

}  // namespace {{ cookiecutter._tinygen.ns }}
