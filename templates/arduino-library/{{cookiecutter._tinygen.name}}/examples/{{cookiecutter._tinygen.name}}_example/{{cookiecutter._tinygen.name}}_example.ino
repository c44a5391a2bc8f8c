// {{ cookiecutter._tinygen.name }}_example: how a sketch uses the {{ cookiecutter._tinygen.name }} library (generated
// by tinygen {{ cookiecutter._tinygen.tinygen_version }} for {{ cookiecutter._tinygen.board.name }}).
//
// setup(): opens the serial port, loads the model and runs its golden self-test
//          (prints "{{ cookiecutter._tinygen.log_prefix }} self-test: PASS").
// loop():  runs one example inference per second and prints the outputs and the time.
// In your sketch, call the model with your own inputs:
{%- if cookiecutter._tinygen.single_io %}
//   float input[{{ cookiecutter._tinygen.ns }}::kInput0Elements] = {...};
//   float output[{{ cookiecutter._tinygen.ns }}::kOutput0Elements];
//   {{ cookiecutter._tinygen.ns }}::model_run(input, output);
{%- else %}
//   {{ cookiecutter._tinygen.ns }}::model_set_input(i, values) for each input, {{ cookiecutter._tinygen.ns }}::model_invoke(),
//   {{ cookiecutter._tinygen.ns }}::model_get_output(i, values) for each output.
{%- endif %}
#include <{{ cookiecutter._tinygen.files.tinygen_model }}.h>
{%- if cookiecutter._tinygen.shared_arena %}

// This library was generated with `--arena shared`: the firmware defines the arena all such
// models share, once, sized for the largest of them.
TINYGEN_SHARED_ARENA({{ cookiecutter._tinygen.ns }}::kArenaBytes);
{%- endif %}

void setup() {
  Serial.begin(115200);
{%- if cookiecutter._tinygen.board.serial_wait_ms %}
  // Native-USB boards: give the Serial Monitor up to {{ cookiecutter._tinygen.board.serial_wait_ms }} ms to connect.
  while (!Serial && millis() < {{ cookiecutter._tinygen.board.serial_wait_ms }}) {
  }
{%- endif %}
  if ({{ cookiecutter._tinygen.ns }}::model_setup()) {
    {{ cookiecutter._tinygen.ns }}::model_self_test();
  }
}

void loop() {
  {{ cookiecutter._tinygen.ns }}::model_run_example();
  delay(1000);
}
