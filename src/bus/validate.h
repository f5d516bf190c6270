/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Validate: the object model's consistency checker
 *
 * bus_validate() walks a whole bus and checks every invariant the model's
 * modules state in their head comments. It is for tests and debugging (it
 * is O(everything)), never called on the broker's hot path.
 */

typedef struct Bus Bus;

int bus_validate(Bus *bus);
