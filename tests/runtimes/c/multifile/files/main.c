#include <math.h>
#include <stdio.h>

#include "lib/greet.h"

int main(void)
{
	greet("corral");
	printf("sqrt(2)=%.4f\n", sqrt(2.0)); /* links libm */
	return 0;
}
