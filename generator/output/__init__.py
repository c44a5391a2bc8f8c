"""What tinygen writes: the template context (`context`), the project rendered through the
cookiecutter templates and the firmware core (`render`, `firmware/`), the project with its
report (`project`), the report in three forms (`report`), the C arrays (`model_source`),
project names (`naming`) and on-device profiles read back (`profile`)."""
