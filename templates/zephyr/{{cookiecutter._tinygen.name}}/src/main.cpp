// {{ cookiecutter._tinygen.name }}: entry point. Written once by tinygen {{ cookiecutter._tinygen.tinygen_version }}; this file is yours:
// regenerating the project (`tinygen new ... --force`) never touches it.
//
// At boot: load the model, run the golden self-test (prints "tinygen self-test: PASS"),
// then run one example inference per second. Replace the loop with your own inputs:
{%- if cookiecutter._tinygen.single_io %}
//   float input[tinygen::kInput0Elements] = {...};
//   float output[tinygen::kOutput0Elements];
//   tinygen::model_run(input, output);
{%- else %}
//   tinygen::model_set_input(i, values) for each input, tinygen::model_invoke(),
//   tinygen::model_get_output(i, values) for each output.
{%- endif %}
#include <zephyr/kernel.h>

#include "tinygen_model.h"

int main(void) {
  if (!tinygen::model_setup()) {
    return 1;
  }
  tinygen::model_self_test();

  while (true) {
    tinygen::model_run_example();
    k_msleep(1000);
  }
  return 0;
}
