#include <stdio.h>
#include "calc.h"
#include "strutil.h"
int main(void) { printf("%d %d\n", add(1, 2), str_len("abc")); return 0; }
