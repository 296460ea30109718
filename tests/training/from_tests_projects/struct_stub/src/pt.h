#ifndef PT_H
#define PT_H

struct pt { int x, y; };

/* The point (x, y). */
struct pt pt_make(int x, int y);

/* x + y of p. */
int pt_sum(struct pt p);

#endif
