// {{ cookiecutter._tinygen.name }}: Arduino sketch for {{ cookiecutter._tinygen.board.name }}, written once by
// tinygen {{ cookiecutter._tinygen.tinygen_version }}. This file is yours: regenerating the project
// (`tinygen new ... --force`) never touches it.
//
// setup(): opens the serial port, loads the model and runs the golden self-test
//          (prints "tinygen self-test: PASS").
// loop():  runs one example inference per second and prints the outputs and the time.
// Replace the loop body with your own inputs:
{%- if cookiecutter._tinygen.single_io %}
//   float input[tinygen::kInput0Elements] = {...};
//   float output[tinygen::kOutput0Elements];
//   tinygen::model_run(input, output);
{%- else %}
//   tinygen::model_set_input(i, values) for each input, tinygen::model_invoke(),
//   tinygen::model_get_output(i, values) for each output.
{%- endif %}
{% if cookiecutter._tinygen.library_header %}#include <{{ cookiecutter._tinygen.library_header }}>
{% endif %}
#include "tinygen_model.h"

void setup() {
  Serial.begin(115200);
{%- if cookiecutter._tinygen.board.serial_wait_ms %}
  // Native-USB boards: give the Serial Monitor up to {{ cookiecutter._tinygen.board.serial_wait_ms }} ms to connect so the
  // self-test result is not lost; boards without a monitor attached start anyway.
  while (!Serial && millis() < {{ cookiecutter._tinygen.board.serial_wait_ms }}) {
  }
{%- else %}
  // No wait for the Serial Monitor here: model_setup() calls tflite::InitializeTarget(),
  // which in this TFLite-Micro library waits up to 4 s for it.
{%- endif %}
  if (tinygen::model_setup()) {
    tinygen::model_self_test();
  }
}

void loop() {
  tinygen::model_run_example();
  delay(1000);
}
