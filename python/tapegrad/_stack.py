"""Where an instruction's operands sit on a code object's value stack.

Note [Temporaries] (csrc/temporaries.cpp): before Python 3.14 an extension cannot ask
whether an operand is a temporary that only the interpreter's value stack holds, so
the native core reads the running frame's stack itself. For that it needs, at the
instruction being executed, how deep the stack is and how many of its top entries
the instruction hands to the call it makes: this module works both out once per code
object, from the bytecode as ``dis`` reads it, the way the compiler does.
"""

from __future__ import annotations

import dis
from array import array
from types import CodeType

# Instructions after which execution never falls through to the next one.
_NO_FALLTHROUGH = {dis.opmap[name] for name in (
    "RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE", "JUMP_FORWARD",
    "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "JUMP", "JUMP_NO_INTERRUPT",
) if name in dis.opmap}
_JUMPS = set(dis.hasjrel) | set(dis.hasjabs)

# The instructions whose call gets its operands from the top of the stack, and
# how many: an operator, or a function call with its arguments pushed one by one.
# Not CALL_FUNCTION_EX, whose arguments come from a tuple (f(*args)).
_OPERANDS = {dis.opmap["BINARY_OP"]: lambda arg: 2, dis.opmap["UNARY_NEGATIVE"]: lambda arg: 1,
             dis.opmap["CALL"]: lambda arg: arg}
# Before 3.12 a call is PRECALL n, CALL n, and either may make the call (CALL
# until PRECALL is specialised). The compiler counts PRECALL as popping the n
# arguments, but it leaves the stack as it is: at CALL they are still there.
_PRECALL = dis.opmap.get("PRECALL")
if _PRECALL is not None:
    _OPERANDS[_PRECALL] = lambda arg: arg


def operand_slots(code: CodeType) -> bytes:
    """Two int16 per code unit: the stack's depth before the instruction that starts
    there, and how many top entries its call takes (0: none to check; -1, -1 where no
    instruction starts, none is reached, or the depths do not add up).

    Example:
        >>> import array, dis
        >>> def f(a, b):
        ...     return a * 2.0 + b
        >>> slots = array.array("h", operand_slots(f.__code__))
        >>> add = [i for i in dis.get_instructions(f) if i.opname == "BINARY_OP"][-1]
        >>> slots[add.offset], slots[add.offset + 1]  # two code units per offset step
        (2, 2)
    """
    try:
        return _operand_slots(code)
    except (ValueError, KeyError):  # a flow this model does not know: nothing to check
        return (array("h", [-1]) * len(code.co_code)).tobytes()


def _operand_slots(code: CodeType) -> bytes:
    instructions = [i for i in dis.get_instructions(code) if i.opname != "CACHE"]
    position = {ins.offset: k for k, ins in enumerate(instructions)}
    depth = array("h", [-1]) * (len(code.co_code) // 2)
    pending = [(0, 0)]
    for entry in dis._parse_exception_table(code):  # handlers: entry depth, lasti, exception
        pending.append((position[entry.target], entry.depth + int(entry.lasti) + 1))
    while pending:
        k, d = pending.pop()
        while k < len(instructions):
            ins = instructions[k]
            unit = ins.offset // 2
            if depth[unit] != -1:
                if depth[unit] != d:
                    raise ValueError(f"inconsistent stack depth at offset {ins.offset}")
                break
            depth[unit] = d
            arg = ins.arg if ins.opcode >= dis.HAVE_ARGUMENT else None
            if ins.opcode in _JUMPS:
                jumped = d + dis.stack_effect(ins.opcode, arg, jump=True)
                pending.append((position[ins.argval], jumped))
            if ins.opcode in _NO_FALLTHROUGH:
                break
            d += dis.stack_effect(ins.opcode, arg, jump=False)
            k += 1
    slots = array("h", [-1]) * len(code.co_code)
    for ins in instructions:
        unit = ins.offset // 2
        if depth[unit] < 0:
            continue
        operands = _OPERANDS.get(ins.opcode)
        count = operands(ins.arg) if operands else 0
        real = depth[unit]
        if _PRECALL is not None and ins.opname == "CALL":
            real += ins.arg  # what PRECALL did not pop
        slots[2 * unit] = real
        slots[2 * unit + 1] = min(count, real)
    return slots.tobytes()
