#include "textflag.h"

// func growStack()
// A 16 KiB frame (stackReserve) that is never touched: the prologue the
// assembler adds grows the stack if the frame does not fit.
TEXT ·growStack(SB), 0, $16384-0
	RET
