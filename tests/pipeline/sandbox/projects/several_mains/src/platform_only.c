#include <platform_sdk_that_is_not_installed.h>
int platform_init(void) { return sdk_init(); }
