#include "calc.h"
int main(void) { return (add(2, 3) == 5 && sub(5, 3) == 2) ? 0 : 1; }
