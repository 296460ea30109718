#include "strutil.h"
int main(void) { return str_len("hello") == 5 ? 0 : 1; }
